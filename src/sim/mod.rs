//! The Proxmox VE API simulator (`pve-sim`): a stateful, HTTPS stand-in for the parts of
//! the PVE 9.1 API that an LXC operator uses, with fault injection.
//!
//! Start it in-process with [`start`]:
//! ```no_run
//! # async fn demo() -> Result<(), proxmox_lxc_operator::sim::SimError> {
//! use proxmox_lxc_operator::sim::{start, SimConfig};
//! let sim = start(SimConfig::fast()).await?;
//! println!("{} {}", sim.base_url(), sim.token_header());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//! Requests go to `{base_url}/api2/json/...`; the admin API lives under `{base_url}/_sim/`.
//! The facts it follows are in `../shared/pve-api/README.md`; parameters are validated
//! against the official schema kept in `src/sim/schema-lxc.json`.

mod api;
mod api_error;
mod config;
mod guests;
mod oci_registry;
mod propstr;
mod schema;
mod server;
mod state;
mod task_ctx;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use config::{
    default_task_durations, ApplianceConfig, BridgeConfig, FaultConfig, FaultKind, FaultRule, LatencyConfig,
    NodeConfig, SimConfig, StorageConfig, TokenConfig, UserConfig, DEFAULT_ROOT_PASSWORD, DEFAULT_TOKEN_SECRET,
};

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate or TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A container as the admin helpers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimContainer {
    /// VM id.
    pub vmid: u32,
    /// Node it lives on.
    pub node: String,
    /// `running` or `stopped`.
    pub status: String,
    /// Current lock, if any.
    pub lock: Option<String>,
    /// Raw config values as stored in the `.conf` file (no pending changes).
    pub config: BTreeMap<String, String>,
    /// Pending changes.
    pub pending: BTreeMap<String, String>,
    /// Snapshot names.
    pub snapshots: Vec<String>,
}

/// A running simulator. Dropping it does not stop the server; call [`SimHandle::shutdown`].
pub struct SimHandle {
    addr: SocketAddr,
    cert_pem: String,
    cert_der: Vec<u8>,
    fingerprint: String,
    sim: Arc<state::Sim>,
    front: Arc<server::Front>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Start the simulator on `config.listen` (default `127.0.0.1:0`) with a fresh self-signed
/// certificate. Must be called inside a tokio runtime.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    if config.nodes.is_empty() {
        return Err(SimError::Config("at least one node is needed".into()));
    }
    let addr = config.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;

    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "pve-sim".to_string(),
        addr.ip().to_string(),
    ];
    let (acceptor, cert_der_bytes, cert_pem, fingerprint) = self_signed_acceptor(names)?;

    let mut key = [0u8; 32];
    {
        use rand::RngCore;
        rand::rng().fill_bytes(&mut key);
    }
    let sim = Arc::new(state::Sim {
        state: Mutex::new(state::State::new(config)),
    });
    sim.lock().fingerprint = fingerprint.clone();
    let front = Arc::new(server::Front {
        sim: sim.clone(),
        ticket_key: key,
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(api::ha_crm::run(Arc::downgrade(&sim), rx.clone()));
    tokio::spawn(api::console::run(Arc::downgrade(&sim), rx.clone()));
    let task = tokio::spawn(server::serve(listener, acceptor, front.clone(), rx));
    Ok(SimHandle {
        addr,
        cert_pem,
        cert_der: cert_der_bytes,
        fingerprint,
        sim,
        front,
        shutdown: tx,
        task: Mutex::new(Some(task)),
    })
}

/// A fresh self-signed certificate for `names` and a TLS acceptor serving it:
/// `(acceptor, certificate DER, certificate PEM, SHA-256 fingerprint)`.
fn self_signed_acceptor(names: Vec<String>) -> Result<(tokio_rustls::TlsAcceptor, Vec<u8>, String, String), SimError> {
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| SimError::Tls(e.to_string()))?;
    let cert_der = ck.cert.der().clone();
    let cert_pem = ck.cert.pem();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let fingerprint = fingerprint_of(cert_der.as_ref());
    let cert_der_bytes = cert_der.as_ref().to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .map_err(|e| SimError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        cert_der_bytes,
        cert_pem,
        fingerprint,
    ))
}

/// One more HTTPS listener of a running simulator, standing for one Proxmox node's own
/// `pveproxy`: same state, its **own** self-signed certificate (as every PVE node has by
/// default). Made by [`SimHandle::add_node_endpoint`]; stop it with [`SimEndpoint::shutdown`].
pub struct SimEndpoint {
    node: String,
    addr: SocketAddr,
    cert_pem: String,
    fingerprint: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SimEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimEndpoint")
            .field("node", &self.node)
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimEndpoint {
    /// The node this endpoint stands for.
    pub fn node(&self) -> &str {
        &self.node
    }
    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }
    /// Its certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    /// SHA-256 fingerprint of its certificate, `AB:CD:...`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
    /// Stop this listener (the node's API goes away; the others keep serving).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let t = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.await;
        }
    }
}

/// SHA-256 of a DER certificate as `AB:CD:...`.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl SimHandle {
    /// `https://127.0.0.1:PORT` (no trailing slash, no `/api2/json`).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The self-signed certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The self-signed certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 fingerprint of the certificate, `AB:CD:...`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The first configured token as `USER@REALM!ID=SECRET`.
    pub fn token(&self) -> String {
        let st = self.sim.lock();
        st.cfg
            .tokens
            .first()
            .map(|t| format!("{}={}", t.id, t.secret))
            .unwrap_or_default()
    }

    /// The `Authorization` header value for the first token: `PVEAPIToken=...`.
    pub fn token_header(&self) -> String {
        format!("PVEAPIToken={}", self.token())
    }

    /// All configured tokens.
    pub fn tokens(&self) -> Vec<TokenConfig> {
        self.sim.lock().cfg.tokens.clone()
    }

    /// The first configured password user as (userid, password).
    pub fn user_credentials(&self) -> Option<(String, String)> {
        self.sim
            .lock()
            .cfg
            .users
            .iter()
            .find(|u| !u.password.is_empty())
            .map(|u| (u.userid.clone(), u.password.clone()))
    }

    /// One container's state.
    pub fn container(&self, vmid: u32) -> Option<SimContainer> {
        let st = self.sim.lock();
        st.cts.get(&vmid).map(|ct| SimContainer {
            vmid,
            node: ct.node.clone(),
            status: if ct.running { "running".into() } else { "stopped".into() },
            lock: ct.lock().map(str::to_string),
            config: ct.conf.clone(),
            pending: ct.pending.clone(),
            snapshots: ct.snapshots.keys().cloned().collect(),
        })
    }

    /// The terminal size a console client of CT `vmid` set last (`cols`, `rows`).
    pub fn console_size(&self, vmid: u32) -> Option<(u16, u16)> {
        self.sim.lock().consoles.sizes.get(&vmid).copied()
    }

    /// All containers (same as `GET /_sim/containers`).
    pub fn containers(&self) -> Vec<SimContainer> {
        let ids: Vec<u32> = self.sim.lock().cts.keys().copied().collect();
        ids.into_iter().filter_map(|id| self.container(id)).collect()
    }

    /// Set or clear a container lock (like `pct set --lock` / `pct unlock`).
    pub fn set_lock(&self, vmid: u32, lock: Option<&str>) -> bool {
        let mut st = self.sim.lock();
        match st.cts.get_mut(&vmid) {
            Some(ct) => {
                match lock {
                    Some(l) => ct.conf.insert("lock".into(), l.into()),
                    None => ct.conf.remove("lock"),
                };
                true
            }
            None => false,
        }
    }

    /// Replace the fault configuration.
    pub fn set_faults(&self, faults: FaultConfig) {
        server::apply_faults(&mut self.sim.lock(), faults);
    }

    /// Take a node offline or bring it back.
    pub fn set_node_online(&self, node: &str, online: bool) -> bool {
        let mut st = self.sim.lock();
        let Some(n) = st.nodes.get_mut(node) else { return false };
        n.online = online;
        st.faults.offline_nodes.retain(|x| x != node);
        if !online {
            st.faults.offline_nodes.push(node.to_string());
        }
        true
    }

    /// Change the task clock speed-up.
    pub fn set_clock_speed(&self, speed: f64) {
        if speed > 0.0 {
            self.sim.lock().cfg.clock_speed = speed;
        }
    }

    /// Statistics (same JSON as `GET /_sim/stats`).
    pub fn stats(&self) -> Value {
        self.sim.lock().stats.to_json()
    }

    /// Zero the statistics.
    pub fn reset_stats(&self) {
        self.sim.lock().stats = Default::default();
    }

    /// Serve the same simulated cluster on one more port (127.0.0.1, a free port) with its own
    /// self-signed certificate, standing for `node`'s API: per-node certificates as on a
    /// default Proxmox cluster, for failover with pinned fingerprints.
    pub async fn add_node_endpoint(&self, node: &str) -> Result<SimEndpoint, SimError> {
        let want = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = tokio::net::TcpListener::bind(want)
            .await
            .map_err(|source| SimError::Bind { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: want, source })?;
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), node.to_string()];
        let (acceptor, _, cert_pem, fingerprint) = self_signed_acceptor(names)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(server::serve(listener, acceptor, self.front.clone(), rx));
        Ok(SimEndpoint {
            node: node.to_string(),
            addr,
            cert_pem,
            fingerprint,
            shutdown: tx,
            task: Mutex::new(Some(task)),
        })
    }

    /// Place a container disk `vm-<vmid>-disk-N` of `size` bytes on a storage (as seen from
    /// `node`) that no config references: a detached disk, or another cluster's guest on
    /// shared storage. Returns its volid. Same as `POST /_sim/storage/{storage}/disks`.
    pub fn plant_unreferenced_disk(&self, node: &str, storage: &str, vmid: u32, size: u64) -> Result<String, String> {
        self.sim.lock().plant_disk(storage, node, vmid, size)
    }

    /// Add a QEMU VM at `vmid` on `node`: it holds the vmid (creates there fail like on
    /// Proxmox) and is listed in `/cluster/resources` as `type: qemu`. Same as
    /// `POST /_sim/qemu`.
    pub fn add_qemu_vm(&self, vmid: u32, node: &str, name: &str) -> Result<(), String> {
        self.sim.lock().add_qemu(vmid, node, name)
    }

    /// Volume ids on a storage as seen from a node.
    pub fn volumes(&self, node: &str, storage: &str) -> Vec<String> {
        let st = self.sim.lock();
        let key = st.vol_key(storage, node);
        st.volumes
            .get(&key)
            .map(|l| l.iter().map(|v| v.volid.clone()).collect())
            .unwrap_or_default()
    }

    /// Stop serving (open connections are closed).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let t = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.await;
        }
    }
}
