//! `proxmox-lxc-operator`: the operator binary.
use clap::{Parser, Subcommand};
use proxmox_lxc_operator::telemetry::{self, LogFormat};

/// `--version`: the crate version and the git commit it was built from (`PLO_GIT_COMMIT` at build
/// time, set by tests/scripts/test.sh, the Containerfile and CI; `unknown` without it).
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {})",
        env!("CARGO_PKG_VERSION"),
        option_env!("PLO_GIT_COMMIT")
            .filter(|c| !c.is_empty())
            .unwrap_or("unknown")
    )
});

#[derive(Parser, Debug)]
#[command(version = VERSION.as_str(), about = "Manage Proxmox VE LXC containers as Kubernetes resources")]
struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value = "text", global = true, env = "LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator.
    Run(Box<RunArgs>),
    /// Print every CRD as one multi-document YAML (or write one file per CRD with --out-dir).
    Crds {
        /// Write one `<kind>.yaml` per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
        /// Also write the CRDs as Helm templates into `CHART/templates/crds/` (`--out-dir` always
        /// gets `API.md` too).
        #[arg(long, requires = "out_dir")]
        chart_dir: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Watch only these namespaces (repeat or comma-separate); all namespaces when omitted.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Address of the health (/healthz, /readyz) and metrics (/metrics) listener.
    #[arg(long, default_value = "0.0.0.0:8080", env = "HTTP_ADDR")]
    http_addr: std::net::SocketAddr,
    /// Serve /metrics only to a bearer token whose user may `get` the non-resource URL
    /// /metrics (checked with a TokenReview and a SubjectAccessReview, allowed tokens cached
    /// for 60 s). /healthz and /readyz stay open.
    #[arg(long, env = "METRICS_AUTH")]
    metrics_auth: bool,
    /// How often an in-sync container is passed again (config, firewall and interfaces compared
    /// with its spec) even when the inventory shows no change (`0s` turns it off), e.g. `1h`.
    #[arg(long, default_value = "1h")]
    drift_check_interval: String,
    /// The longest interval between two checks of a running Proxmox task whose kind's duration
    /// is not known yet or that runs well past it, e.g. `1s` (a young task is checked sooner; a
    /// task of a known kind near the time its kind took last).
    #[arg(long, default_value = "1s")]
    task_poll_interval: String,
    /// The longest an image pull may run (and hold a task slot), e.g. `15m`: a registry that
    /// trickles is stopped there and the pull is tried again after a minute.
    #[arg(long, default_value = "15m")]
    pull_timeout: String,
    /// How often each ProxmoxCluster's credential Secret is read again (rotation), e.g. `60s`.
    #[arg(long, default_value = "60s")]
    credentials_recheck_interval: String,
    /// On SIGTERM/SIGINT, how long running reconciles may take to finish before the process
    /// exits anyway (keep it below the pod's `terminationGracePeriodSeconds`).
    #[arg(long, default_value = "20s")]
    shutdown_timeout: String,
    /// At most this many LxcContainer reconciles at once (0: no limit); bounds memory when
    /// thousands of objects arrive together.
    #[arg(long, default_value_t = 64)]
    max_concurrent_reconciles: u16,
    /// How often the state kept for objects deleted without a cleanup pass (a finalizer removed
    /// by hand) is dropped, freeing their task slots, queue places and download claims.
    #[arg(long, default_value = "60s")]
    prune_interval: String,
    /// How many of a cluster's containers get a full pass after each inventory read, in turn,
    /// to find drift the inventory cannot show (firewall rules and options, `netN`): N
    /// containers are all checked within N / this resyncs, at about 5 requests each (0: off).
    #[arg(long, default_value_t = 10)]
    drift_checks_per_resync: usize,
    /// Run several replicas with one active at a time (a coordination.k8s.io Lease).
    #[arg(long)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "proxmox-lxc-operator")]
    lease_name: String,
    /// The operator's own namespace (the pod's): it holds the Lease and the Secrets that
    /// `ProxmoxCluster`s name (credentials, CA), and no other namespace's Secrets are read for them.
    #[arg(
        long = "operator-namespace",
        alias = "lease-namespace",
        env = "POD_NAMESPACE",
        default_value = "default"
    )]
    operator_namespace: String,
    /// Manage only the ProxmoxClusters matching this label selector (e.g. `shard=a`), so that
    /// several operator instances can share one Kubernetes cluster. All when omitted.
    #[arg(long, env = "CLUSTER_SELECTOR")]
    cluster_selector: Option<String>,
    /// For tests and demos only: run backup schedules on a clock this many times faster than
    /// the wall clock (e.g. `360`: an hourly schedule fires every 10 s). Default 1 (wall clock).
    #[arg(long, default_value_t = 1.0, env = "SCHEDULE_CLOCK_SPEED")]
    schedule_clock_speed: f64,
    /// With `--schedule-clock-speed`: the RFC 3339 instant where schedule time equals wall time
    /// (give the same one to every restart so schedule time continues). Default: process start.
    #[arg(long, env = "SCHEDULE_CLOCK_ORIGIN")]
    schedule_clock_origin: Option<jiff::Timestamp>,
    /// Serve the management web UI on this address, e.g. `127.0.0.1:8081` (off when unset).
    /// Users sign in with their own Kubernetes bearer token: their RBAC decides what they see.
    #[arg(long, env = "UI_ADDR")]
    ui_addr: Option<std::net::SocketAddr>,
    /// Mark the UI's session cookie `Secure` (set it when the UI is reached over https).
    #[arg(long, env = "UI_SECURE_COOKIES")]
    ui_secure_cookies: bool,
    /// Run virtual nodes: a Kubernetes Node per Proxmox node of every ProxmoxCluster with
    /// `spec.virtualNodes`, and the Pods bound to them as containers (needs RBAC on nodes,
    /// leases in kube-node-lease and pods: the chart's `virtualNodes.enabled`).
    #[arg(long, env = "VIRTUAL_NODES")]
    virtual_nodes: bool,
    /// Address of the kubelet endpoint (`kubectl logs`), served over TLS.
    #[arg(long, default_value = "0.0.0.0:10250", env = "KUBELET_ADDR")]
    kubelet_addr: std::net::SocketAddr,
    /// The address the Nodes publish (the apiserver dials it for `kubectl logs`): the
    /// operator pod's IP.
    #[arg(long, env = "POD_IP", default_value = "127.0.0.1")]
    node_address: String,
    /// The port the Nodes publish for the kubelet endpoint (default: the port of --kubelet-addr).
    #[arg(long)]
    node_port: Option<u16>,
    /// How often the Nodes' Leases are renewed, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    node_renew_interval: String,
    /// `leaseDurationSeconds` of the Nodes' Leases, e.g. `40s`.
    #[arg(long, default_value = "40s")]
    node_lease_duration: String,
    /// Pods with this `spec.schedulerName` are bound to a virtual node by the operator.
    #[arg(long, default_value = "proxmox-lxc")]
    pod_scheduler_name: String,
    /// Bytes of application output (`kubectl logs`) kept per Pod container and run; the run
    /// before the last restart keeps as much again (`--previous`).
    #[arg(long, default_value_t = 1 << 20, env = "POD_LOG_BYTES")]
    pod_log_bytes: usize,
    /// CA bundle (PEM) the kube-apiserver's kubelet client certificate is signed by: the kubelet
    /// endpoint then requires it (mutual TLS). Without it, any caller may read Pod logs (tests).
    #[arg(long, env = "KUBELET_CLIENT_CA")]
    kubelet_client_ca: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    // before any thread exists: every thread that allocates under contention would otherwise
    // get a glibc arena of its own (up to 8 per core), each holding freed memory apart
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_cli())
}

async fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out_dir: None, .. } => {
            print!("{}", proxmox_lxc_operator::crd::all_crds_yaml()?);
            Ok(())
        }
        Command::Crds {
            out_dir: Some(dir),
            chart_dir,
        } => proxmox_lxc_operator::crd::docs::write_generated(&dir, chart_dir.as_deref()),
        Command::Run(args) => {
            let args = *args;
            telemetry::init(cli.log_format, "info,kube_runtime=warn");
            let _ = rustls::crypto::ring::default_provider().install_default();
            let dur = |flag: &str, v: &str| {
                proxmox_lxc_operator::controller::cluster::reconcile::parse_duration(v)
                    .or_else(|| (v == "0").then_some(std::time::Duration::ZERO))
                    .ok_or_else(|| anyhow::anyhow!("--{flag}: {v:?} is not a duration like 30s or 1h"))
            };
            anyhow::ensure!(
                args.schedule_clock_speed.is_finite() && args.schedule_clock_speed >= 1.0,
                "--schedule-clock-speed must be 1 or more"
            );
            let schedule_clock = proxmox_lxc_operator::controller::backup::ScheduleClock {
                speed: args.schedule_clock_speed,
                origin: args.schedule_clock_origin.unwrap_or_else(jiff::Timestamp::now),
            };
            if schedule_clock.speed != 1.0 {
                tracing::warn!(speed = schedule_clock.speed, origin = %schedule_clock.origin, "schedules run on a fast clock (for tests and demos only)");
            }
            // the UI's usage charts: an hour of samples per container, kept only when it is on
            let samples = args
                .ui_addr
                .map(|_| std::sync::Arc::new(proxmox_lxc_operator::controller::cluster::samples::Samples::new(3600)));
            let settings = proxmox_lxc_operator::controller::Settings {
                drift_check_interval: dur("drift-check-interval", &args.drift_check_interval)?,
                task_poll: dur("task-poll-interval", &args.task_poll_interval)?,
                pull_timeout: dur("pull-timeout", &args.pull_timeout)?,
                credentials_recheck: dur("credentials-recheck-interval", &args.credentials_recheck_interval)?,
                max_concurrent_reconciles: args.max_concurrent_reconciles,
                prune_interval: dur("prune-interval", &args.prune_interval)?,
                schedule_clock,
                drift_per_resync: args.drift_checks_per_resync,
                operator_namespace: args.operator_namespace.clone(),
                cluster_selector: args.cluster_selector.clone(),
                samples: samples.clone(),
                virtual_nodes: args
                    .virtual_nodes
                    .then(|| -> anyhow::Result<_> {
                        Ok(proxmox_lxc_operator::controller::vnode::VnodeSettings {
                            lease_duration: dur("node-lease-duration", &args.node_lease_duration)?,
                            renew_interval: dur("node-renew-interval", &args.node_renew_interval)?,
                            address: args.node_address.clone(),
                            kubelet_port: args.node_port.unwrap_or(args.kubelet_addr.port()),
                            scheduler_name: args.pod_scheduler_name.clone(),
                            pod_log_bytes: args.pod_log_bytes,
                            ..Default::default()
                        })
                    })
                    .transpose()?,
                ..Default::default()
            };
            let kube_config = kube::Config::infer().await?;
            let client = kube::Client::try_from(kube_config.clone())?;
            // the controllers' Proxmox connections; the web UI's console joins them
            let clusters = std::sync::Arc::new(proxmox_lxc_operator::controller::cluster::ClusterRegistry::default());
            if let Some(addr) = args.ui_addr {
                // bound here so a taken port fails the start; its own credentials are dropped
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("--ui-addr {addr}: {e}"))?;
                let ui = proxmox_lxc_operator::ui::AppState::new(
                    kube_config,
                    proxmox_lxc_operator::ui::Options {
                        secure_cookies: args.ui_secure_cookies,
                        samples: samples.clone(),
                        clusters: Some(clusters.clone()),
                        ..Default::default()
                    },
                );
                tokio::spawn(async move {
                    if let Err(e) = proxmox_lxc_operator::ui::serve(listener, ui).await {
                        tracing::error!(error = %e, "web UI listener failed");
                    }
                });
            }
            tracing::info!(version = VERSION.as_str(), "operator starting");
            if args.metrics_auth {
                proxmox_lxc_operator::metrics_auth::require(proxmox_lxc_operator::metrics_auth::MetricsAuth::new(
                    client.clone(),
                ));
                tracing::info!("/metrics needs a bearer token allowed to get /metrics");
            }
            let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            });
            let leader_election = args.leader_election.then(|| {
                proxmox_lxc_operator::controller::leader::LeaseConfig::new(
                    args.operator_namespace.clone(),
                    args.lease_name.clone(),
                    identity,
                )
            });
            let opts = proxmox_lxc_operator::controller::run::Options {
                namespaces: args.namespaces,
                http_addr: args.http_addr,
                settings,
                leader_election,
                shutdown_timeout: dur("shutdown-timeout", &args.shutdown_timeout)?,
                clusters,
                kubelet: args
                    .virtual_nodes
                    .then(|| -> anyhow::Result<_> {
                        let client_ca = match &args.kubelet_client_ca {
                            Some(path) => Some(
                                std::fs::read(path)
                                    .map_err(|e| anyhow::anyhow!("--kubelet-client-ca {}: {e}", path.display()))?,
                            ),
                            None => None,
                        };
                        Ok(proxmox_lxc_operator::controller::run::KubeletEndpoint {
                            addr: args.kubelet_addr,
                            client_ca,
                        })
                    })
                    .transpose()?,
            };
            tokio::spawn(release_free_memory_periodically());
            proxmox_lxc_operator::controller::run::run(client, opts).await
        }
    }
}

/// Keeps glibc to two malloc arenas. With the default (8 per core), the runtime's worker and
/// blocking threads each fill an arena of their own; memory freed in one cannot serve the
/// others, and at 10,000 objects that fragmentation is a good part of the heap. Two arenas keep
/// contention low for a process that is mostly waiting on the network. Also fixes glibc's mmap
/// and trim thresholds (see below). `MALLOC_ARENA_MAX` in the environment, glibc's own knob,
/// wins (and leaves all three to glibc).
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tunable; called before any other thread exists
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        // fixed thresholds (glibc raises both up to 32 MiB after the first large free): list
        // pages and response bodies above 128 KiB get pages of their own, returned when freed,
        // instead of growing the heap that later small allocations pin
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

/// How often freed heap memory is handed back to the OS ([`release_free_memory`]); the
/// environment's `PLO_MALLOC_TRIM_MS` overrides it (benchmarks).
const RELEASE_FREE_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Calls [`release_free_memory`] every [`RELEASE_FREE_MEMORY_EVERY`]. Often, not once a
/// while: at start-up, thousands of objects are decoded, reconciled and written back within
/// seconds, and what each burst frees stays resident until the next trim, so a trim every 30 s
/// let the peak grow well over the steady figure. A trim costs well under a millisecond at
/// 10,000 objects (it walks malloc's free lists).
async fn release_free_memory_periodically() {
    let every = std::env::var("PLO_MALLOC_TRIM_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or(RELEASE_FREE_MEMORY_EVERY);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        release_free_memory();
    }
}

/// Hands heap memory freed since the last call back to the OS. glibc keeps freed memory in its
/// arenas: after a burst (thousands of objects reconciled at once at start-up) RSS would
/// otherwise stay at the peak for good. (Here, not in the library, which forbids `unsafe`.)
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas and takes no pointer of ours
    unsafe {
        libc::malloc_trim(0);
    }
}
