//! `proxmox-lxc-operator run`: wires the watches, the controllers and the HTTP listener.

use super::cluster::{self, ClusterKey, ClusterRegistry};
use super::container::reconcile as container;
use super::context::{Context, Settings, Shutdown};
use super::jitter;
use crate::crd::{LxcContainer, ProxmoxCluster};
use crate::http::Health;
use crate::metrics::Metrics;
use futures::{Stream, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Options of `run`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespaces to watch; all when empty.
    pub namespaces: Vec<String>,
    /// Address of the health and metrics listener.
    pub http_addr: SocketAddr,
    /// Timings.
    pub settings: Settings,
    /// Leader election; `None` runs without it (one replica).
    pub leader_election: Option<super::leader::LeaseConfig>,
    /// After SIGTERM/SIGINT, how long running reconciles may take before the process exits
    /// anyway (a reconcile can hang on an apiserver that went away).
    pub shutdown_timeout: Duration,
    /// The kubelet endpoint of the virtual nodes (with `settings.virtual_nodes`).
    pub kubelet: Option<KubeletEndpoint>,
    /// The Proxmox connections the controllers make (shared with the web UI's console).
    pub clusters: Arc<ClusterRegistry>,
}

/// Where the virtual nodes' kubelet endpoint listens, and whom it serves.
#[derive(Clone, Debug)]
pub struct KubeletEndpoint {
    /// Listen address.
    pub addr: SocketAddr,
    /// CA (PEM) of the kube-apiserver's kubelet client certificate; any caller without it.
    pub client_ca: Option<Vec<u8>>,
}

/// Resolves on the first SIGTERM or SIGINT.
async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn api<K>(client: &Client, namespaces: &[String]) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match namespaces {
        [ns] => Api::namespaced(client.clone(), ns),
        _ => Api::all(client.clone()),
    }
}

/// Waits until our CRDs are established, saying which one is missing while it waits.
pub async fn wait_for_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names = [
        "proxmoxclusters.pve.lxc.dev",
        "proxmoxtenants.pve.lxc.dev",
        "lxccontainers.pve.lxc.dev",
    ];
    let mut warned = false;
    loop {
        let mut missing = Vec::new();
        for n in names {
            let ok = matches!(crds.get_opt(n).await, Ok(Some(c)) if c.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True")));
            if !ok {
                missing.push(n);
            }
        }
        if missing.is_empty() {
            return;
        }
        if !warned {
            tracing::warn!(
                ?missing,
                "CRDs are not installed or not established yet: apply crds/ (or install the Helm chart); waiting"
            );
            warned = true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The containers a changed vmid concerns: in the cluster, and the vmid in status (or in spec,
/// for adopted containers).
fn affected(
    store: &Store<LxcContainer>,
    registry: &ClusterRegistry,
    key: &ClusterKey,
    vmid: u32,
) -> Vec<ObjectRef<LxcContainer>> {
    store
        .state()
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.vmid).or(c.spec.vmid) == Some(vmid))
        .filter(|c| {
            let recorded = c.status.as_ref().and_then(|s| s.cluster.clone());
            recorded.unwrap_or_else(|| registry.referenced(c.spec.cluster_ref.as_ref()).name) == key.name
        })
        .map(|c| ObjectRef::from_obj(&**c))
        .collect()
}

fn trigger_stream(
    mut rx: mpsc::UnboundedReceiver<(ClusterKey, u32)>,
    store: Store<LxcContainer>,
    registry: Arc<ClusterRegistry>,
) -> impl Stream<Item = ObjectRef<LxcContainer>> + Send {
    async_stream(move |tx| async move {
        while let Some((key, vmid)) = rx.recv().await {
            for r in affected(&store, &registry, &key, vmid) {
                if tx.send(r).is_err() {
                    return;
                }
            }
        }
    })
}

/// A stream fed by a task (keeps the dependency list short: no async-stream crate).
fn async_stream<T, F, Fut>(f: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(mpsc::UnboundedSender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

pub(crate) use super::kernel::wiring::tokio_stream_from;

/// Runs the operator until SIGTERM/SIGINT.
///
/// With several namespaces, each gets its own watches and controllers (so namespaced RBAC is
/// enough); observer triggers are routed to the controller of their namespace.
pub async fn run(client: Client, opts: Options) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let http = tokio::spawn(crate::http::serve(opts.http_addr, health.clone(), metrics.clone()));
    // the signal stops the controllers, letting running reconciles finish; this bounds that
    // wait, and ends a process that is still waiting for the lease or the CRDs
    let shutdown = Shutdown::default();
    let (stop, grace) = (shutdown.clone(), opts.shutdown_timeout);
    tokio::spawn(async move {
        termination_signal().await;
        stop.trigger();
        tracing::info!(timeout = ?grace, "termination signal: stopping the controllers");
        tokio::time::sleep(grace).await;
        tracing::warn!(timeout = ?grace, "reconciles did not finish within the shutdown timeout; exiting");
        std::process::exit(0);
    });
    let startup = async {
        if let Some(lease) = opts.leader_election.clone() {
            // a standby counts as ready, or a rolling update would wait for the leader to die
            health.ready.store(true, Ordering::Relaxed);
            super::leader::acquire_and_hold(client.clone(), lease).await;
            health.ready.store(false, Ordering::Relaxed);
        }
        wait_for_crds(&client).await;
    };
    tokio::select! {
        _ = startup => {}
        _ = shutdown.triggered() => {
            tracing::info!("operator stopped before it started its controllers");
            return Ok(());
        }
    }
    let registry = opts.clusters.clone();
    let mut consoles = None;
    if let (Some(k), Some(vs)) = (&opts.kubelet, &opts.settings.virtual_nodes) {
        let listener = tokio::net::TcpListener::bind(k.addr)
            .await
            .map_err(|e| anyhow::anyhow!("--kubelet-addr {}: {e}", k.addr))?;
        let names = vec![vs.address.clone(), "localhost".into()];
        let tls = super::vnode::kubelet::tls_config(names, k.client_ca.as_deref())
            .map_err(|e| anyhow::anyhow!("kubelet endpoint TLS: {e}"))?;
        if k.client_ca.is_none() {
            tracing::warn!(addr = %k.addr, "the kubelet endpoint serves Pod logs to any caller (no --kubelet-client-ca)");
        }
        let pod_logs = Arc::new(super::vnode::console::PodLogs::new(vs.pod_log_bytes));
        consoles = Some(pod_logs.clone());
        tokio::spawn(super::vnode::console::run(
            client.clone(),
            registry.clone(),
            pod_logs.clone(),
            opts.namespaces.clone(),
        ));
        let state = super::vnode::logs::LogState {
            pod_logs: Some(pod_logs),
            kube: client.clone(),
            clusters: registry.clone(),
            follow_interval: Duration::from_secs(1),
            limits: Default::default(),
            auth: k
                .client_ca
                .as_ref()
                .map(|_| Arc::new(crate::metrics_auth::MetricsAuth::new(client.clone()))),
        };
        tokio::spawn(super::vnode::kubelet::serve(listener, tls, state));
    }
    let ctx = Arc::new(Context::new(
        client.clone(),
        registry,
        opts.settings.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let (trig_tx, mut trig_rx) = mpsc::unbounded_channel::<(ClusterKey, u32)>();
    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let mut routes: Vec<TriggerSender> = Vec::new();
    let mut runs = Vec::new();
    // cluster-scoped kinds: one controller each, whatever the namespaces watched
    let (pc, pc_store) = cluster_controller(&client, ctx.clone(), trig_tx.clone());
    runs.push(tokio::spawn(pc));
    let (tenants, tenant_store) = super::tenancy::controller::controller(&client, ctx.clone());
    runs.push(tokio::spawn(tenants));
    let mut stores = Vec::new();
    let vnodes = ctx
        .settings
        .virtual_nodes
        .is_some()
        .then(|| Arc::new(super::vnode::VnodeIndex::default()));
    let mut added_routes = Vec::new();
    for scope in scopes {
        if let Some(index) = &vnodes {
            let (added_tx, added_rx) = mpsc::unbounded_channel();
            added_routes.push(added_tx);
            runs.push(tokio::spawn(pod_controller(
                &client,
                scope.clone(),
                ctx.clone(),
                index.clone(),
                added_rx,
                consoles.clone(),
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        routes.push(tx);
        let (lxc, lxc_store) = container_controller(&client, scope.as_deref(), ctx.clone(), rx);
        runs.push(tokio::spawn(lxc));
        let (templates, template_store) = super::template::controller(&client, scope.as_deref(), ctx.clone());
        let (backups, backup_store) = super::backup::controller(&client, scope.as_deref(), ctx.clone());
        let (snapshots, snapshot_store) = super::snapshot::controller(&client, scope.as_deref(), ctx.clone());
        runs.push(tokio::spawn(templates));
        runs.push(tokio::spawn(backups));
        runs.push(tokio::spawn(snapshots));
        ctx.tenancy
            .add_scope(lxc_store.clone(), template_store.clone(), backup_store.clone());
        ctx.tenancy.add_snapshots(snapshot_store.clone());
        stores.push(Stores {
            clusters: pc_store.clone(),
            tenants: tenant_store.clone(),
            containers: lxc_store,
            templates: template_store,
            backups: backup_store,
            snapshots: snapshot_store,
        });
    }
    if let Some(index) = vnodes {
        tokio::spawn(super::vnode::node::run(
            ctx.clone(),
            pc_store.clone(),
            index,
            added_routes,
        ));
    }
    tokio::spawn(async move {
        while let Some((key, vmid)) = trig_rx.recv().await {
            for tx in &routes {
                let _ = tx.send((key.clone(), vmid));
            }
        }
    });
    // objects deleted without a cleanup pass (no finalizer: ObserveOnly, or a finalizer removed
    // by hand) leave per-object state behind: slots, queue places, claims. Drop what no cached
    // object owns any more
    let (prune_stores, pctx) = (stores.clone(), ctx.clone());
    tokio::spawn(async move {
        for s in &prune_stores {
            s.wait_until_ready().await;
        }
        let mut tick = tokio::time::interval(pctx.settings.prune_interval);
        loop {
            tick.tick().await;
            prune_per_object_state(&pctx, &prune_stores);
        }
    });
    let h = health.clone();
    tokio::spawn(async move {
        for s in &stores {
            s.wait_until_ready().await;
        }
        h.ready.store(true, Ordering::Relaxed);
        tracing::info!("caches synced; ready");
    });
    tracing::info!(namespaces = ?opts.namespaces, "operator running");
    // a controller that ends before the signal (it cannot, short of a bug) would leave its
    // objects unattended while the process looks healthy: exit, and let Kubernetes restart us
    let mut runs: futures::stream::FuturesUnordered<_> = runs.into_iter().collect();
    let controllers = async {
        while let Some(r) = runs.next().await {
            if !shutdown.is_triggered() {
                return Err(anyhow::anyhow!(
                    "a controller stopped unexpectedly ({}); exiting so that the operator is restarted",
                    r.err().map(|e| e.to_string()).unwrap_or_else(|| "it ended".into())
                ));
            }
        }
        Ok(())
    };
    tokio::select! {
        r = controllers => r?,
        r = http => { if let Ok(Err(e)) = r { anyhow::bail!("health listener failed: {e}"); } }
    }
    tracing::info!("operator stopped");
    Ok(())
}

/// The caches of one scope's controllers.
#[derive(Clone)]
struct Stores {
    clusters: Store<ProxmoxCluster>,
    tenants: Store<crate::crd::ProxmoxTenant>,
    containers: Store<LxcContainer>,
    templates: Store<crate::crd::LxcTemplate>,
    backups: Store<crate::crd::LxcBackup>,
    snapshots: Store<crate::crd::LxcSnapshot>,
}

impl Stores {
    async fn wait_until_ready(&self) {
        ready(&self.clusters).await;
        ready(&self.tenants).await;
        ready(&self.containers).await;
        ready(&self.templates).await;
        ready(&self.backups).await;
        ready(&self.snapshots).await;
    }
}

/// Waits until `store` has its first full list. `Store::wait_until_ready` alone can hang when
/// another task (the controller's runner) waits on the same store: its one-shot channel wakes
/// only the waiter that polled last, so a waiter whose wake was overwritten sleeps forever.
/// Polling again now and then picks up the value once it is there.
async fn ready<K>(store: &Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready())
        .await
        .is_err()
    {}
}

/// Forgets the per-object state of objects that are no longer in any cache.
fn prune_per_object_state(ctx: &Context, stores: &[Stores]) {
    let mut uids = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for s in stores {
        for o in s.containers.state() {
            uids.insert(o.uid().unwrap_or_default());
            names.insert((o.namespace().unwrap_or_default(), o.name_any()));
        }
        uids.extend(s.templates.state().iter().filter_map(|o| o.uid()));
        uids.extend(s.backups.state().iter().filter_map(|o| o.uid()));
        uids.extend(s.snapshots.state().iter().filter_map(|o| o.uid()));
    }
    ctx.retain(&|uid| uids.contains(uid));
    ctx.metrics
        .retain_containers(|ns, name| names.contains(&(ns.to_string(), name.to_string())));
}

/// Where observer triggers (cluster, vmid) are sent.
type TriggerSender = mpsc::UnboundedSender<(ClusterKey, u32)>;

/// A controller's run loop (kept here for the kinds that still name it by this path).
pub use super::kernel::wiring::ControllerFuture;

/// The `ProxmoxCluster` controller (cluster-scoped: the clusters matching the instance's
/// `--cluster-selector`).
fn cluster_controller(
    client: &Client,
    ctx: Arc<Context>,
    triggers: mpsc::UnboundedSender<(ClusterKey, u32)>,
) -> (ControllerFuture, Store<ProxmoxCluster>) {
    let mut config = watcher::Config::default();
    if let Some(sel) = &ctx.settings.cluster_selector {
        config = config.labels(sel);
    }
    let pc_ctl = Controller::new(Api::<ProxmoxCluster>::all(client.clone()), config);
    let pc_store = pc_ctl.store();
    let pc_run = pc_ctl
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(
            move |obj, ctx: Arc<Context>| {
                let tt = triggers.clone();
                async move {
                    let name = obj.name_any();
                    super::instrumented(
                        "ProxmoxCluster",
                        &name,
                        &ctx.metrics,
                        cluster::reconcile::reconcile(obj, ctx.clone(), tt),
                    )
                    .await
                }
            },
            |obj: Arc<ProxmoxCluster>, err, _ctx| {
                tracing::warn!(object = %obj.name_any(), error = %err, "ProxmoxCluster reconcile failed");
                Action::requeue(jitter(Duration::from_secs(10)))
            },
            ctx.clone(),
        )
        .for_each(|_| async {});
    (Box::pin(pc_run), pc_store)
}

pub use super::kernel::wiring::{cache_watch_config, slim_for_cache, CACHE_LIST_PAGE};

/// Drops this process's copy of an object's status once the cache holds that status (only for
/// watch events applied to the cache at once: objects of a relist reach it together at its end).
fn status_copy_dropper(ctx: Arc<Context>) -> impl FnMut(&Result<watcher::Event<LxcContainer>, watcher::Error>) {
    move |ev| {
        if let Ok(watcher::Event::Apply(o)) = ev {
            let uid = o.metadata.uid.as_deref().unwrap_or_default();
            ctx.status.containers.caught_up(uid, o.status.as_ref());
        }
    }
}

/// The `LxcContainer` controller of one namespace (or all).
fn container_controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    container_triggers: mpsc::UnboundedReceiver<(ClusterKey, u32)>,
) -> (ControllerFuture, Store<LxcContainer>) {
    let ns: Vec<String> = namespace.map(|n| vec![n.to_string()]).unwrap_or_default();
    // spec changes (generation, which deletion bumps too) and observer triggers; not our own
    // status writes
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<LxcContainer>(client, &ns), cache_watch_config())
        .default_backoff()
        .modify(slim_for_cache)
        .reflect(writer)
        .inspect(status_copy_dropper(ctx.clone()));
    let stream = super::kernel::generations::generation_changes(stream);
    let concurrency = ctx.settings.max_concurrent_reconciles;
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    ctx.wakes.containers.add(namespace.map(str::to_string), wake_tx);
    let lxc_run = Controller::for_stream(stream, reader.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        // no debounce: kube adds it to every request, requeues included (a 200 ms task poll
        // would become 300 ms); repeated triggers of one object are merged anyway
        .reconcile_on(trigger_stream(container_triggers, reader.clone(), ctx.clusters.clone()))
        .reconcile_on(tokio_stream_from(wake_rx))
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(container::reconcile, container::error_policy, ctx)
        .for_each(|_| async {});
    (Box::pin(lxc_run), reader)
}

/// The Pod controller of one scope, and the sweep that deletes the containers of Pods that are
/// gone (every `--prune-interval`, once the Pod cache is complete).
fn pod_controller(
    client: &Client,
    scope: Option<String>,
    ctx: Arc<Context>,
    index: Arc<super::vnode::VnodeIndex>,
    added: mpsc::UnboundedReceiver<String>,
    logs: Option<Arc<super::vnode::console::PodLogs>>,
) -> ControllerFuture {
    let pctx = Arc::new(super::vnode::pod_context::PodContext {
        ctx: ctx.clone(),
        index,
        logs,
    });
    let (run, store) = super::vnode::pod::controller(client, scope.as_deref(), pctx, added);
    tokio::spawn(async move {
        ready(&store).await;
        let mut tick = tokio::time::interval(ctx.settings.prune_interval);
        loop {
            tick.tick().await;
            if let Err(e) = super::vnode::pod::remove_orphans(&ctx, &store, scope.as_deref()).await {
                tracing::warn!(error = %e, "virtual nodes: could not sweep the containers of deleted Pods");
            }
        }
    });
    run
}
