//! The unit layer for reconciles: a fake Kubernetes API server (the tower-test mock of
//! kube-rs/controller-rs, answering like an apiserver from an in-memory object store) and the
//! in-process Proxmox simulator, so that identity, deletion and stale-cache cases run in
//! milliseconds without an apiserver. The e2e tests stay the user's view.

use crate::controller::cluster::{observer, ClusterHandle, ClusterKey, ClusterRegistry};
use crate::controller::context::{Context, Settings, Shutdown};
use crate::metrics::Metrics;
use crate::pve;
use crate::sim::{self, SimHandle};
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An in-memory apiserver: objects by path, every write recorded.
#[derive(Default)]
pub struct FakeApi {
    objects: Mutex<HashMap<String, Value>>,
    /// Every write: (method, path, body).
    pub writes: Mutex<Vec<(String, String, Value)>>,
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

impl FakeApi {
    /// Stores `obj` at `path` (`/apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME`).
    pub fn put(&self, path: &str, obj: &impl serde::Serialize) {
        self.objects
            .lock()
            .unwrap()
            .insert(path.to_string(), serde_json::to_value(obj).unwrap());
    }

    /// The status bodies written to `path` (its `/status`), oldest first.
    pub fn status_writes(&self, path: &str) -> Vec<Value> {
        let p = format!("{path}/status");
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, w, _)| m == "PATCH" && *w == p)
            .map(|(_, _, b)| b["status"].clone())
            .collect()
    }

    fn answer(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        if method != "GET" {
            self.writes
                .lock()
                .unwrap()
                .push((method.to_string(), path.to_string(), body.clone()));
        }
        if path.contains("/events") {
            return (StatusCode::CREATED, body);
        }
        let mut objects = self.objects.lock().unwrap();
        let (target, sub) = match path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (path.to_string(), false),
        };
        let Some(obj) = objects.get_mut(&target) else {
            return (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{path} not found")}),
            );
        };
        match method {
            "GET" => {}
            "PATCH" if sub => {
                obj["status"] = body["status"].clone();
            }
            "PATCH" => merge(obj, &body),
            _ => {}
        }
        (StatusCode::OK, obj.clone())
    }
}

/// A Kubernetes client whose requests `fake` answers.
pub fn kube_client(fake: Arc<FakeApi>) -> kube::Client {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (code, out) = fake.answer(&method, &path, body);
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&out).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
    });
    kube::Client::new(mock, "default")
}

/// A context against `fake` and an in-process simulator registered as cluster `default`.
pub struct World {
    /// The fake apiserver.
    pub api: Arc<FakeApi>,
    /// The simulator.
    pub sim: SimHandle,
    /// The operator's context.
    pub ctx: Arc<Context>,
    /// The cluster's handle.
    pub handle: Arc<ClusterHandle>,
}

impl World {
    /// Starts the simulator (fast clock) and connects a cluster `default` in namespace `ns`
    /// with at most `slots` tasks per node.
    pub async fn new(_ns: &str, slots: u32) -> World {
        let sim = sim::start(sim::SimConfig::fast()).await.unwrap();
        let api = Arc::new(FakeApi::default());
        let kube = kube_client(api.clone());
        let metrics = Arc::new(Metrics::default());
        let settings = Settings {
            task_poll: Duration::from_millis(100),
            ..Default::default()
        };
        let ctx = Arc::new(Context::new(
            kube.clone(),
            Arc::new(ClusterRegistry::default()),
            settings,
            metrics.clone(),
            Shutdown::default(),
        ));
        // no tenancy watch here: no tenant exists, and that is known
        ctx.tenancy.assume_loaded();
        let token = sim.token();
        let (id, secret) = token.split_once('=').unwrap();
        let mut cfg = pve::ClientConfig::new(
            [sim.base_url()],
            pve::Auth::Token {
                token_id: id.into(),
                secret: secret.into(),
            },
        );
        cfg.tls = pve::TlsMode::Fingerprint(sim.fingerprint().to_string());
        cfg.limits.max_concurrent_tasks_per_node = slots;
        let key = ClusterKey::named("default");
        let pc = json!({"apiVersion": "pve.lxc.dev/v1alpha1", "kind": "ProxmoxCluster", "metadata": {"name": "default"}, "spec": {"endpoints": [sim.base_url()], "credentialsRef": {"name": "pve"}}});
        api.put("/apis/pve.lxc.dev/v1alpha1/proxmoxclusters/default", &pc);
        let handle = observer::spawn(observer::ObserverParams {
            key,
            client: pve::Client::new(cfg).unwrap(),
            kube,
            resync: Duration::from_millis(200),
            status_refresh: Duration::from_secs(600),
            insecure_tls: false,
            triggers: tokio::sync::mpsc::unbounded_channel().0,
            config_hash: 0,
            tenancy: crate::crd::Tenancy::Open,
            is_default: true,
            maintenance: Default::default(),
            metrics,
            samples: None,
            drift_per_resync: 0,
            usage: Arc::new(Default::default),
            privileges_recheck: Duration::from_secs(600),
        });
        ctx.clusters.insert(handle.clone());
        for _ in 0..100 {
            if handle.connected() && handle.snapshot().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            handle.connected(),
            "the simulator answers: {:?}",
            *handle.connection.borrow()
        );
        World { api, sim, ctx, handle }
    }

    /// How many requests the simulator answered for `endpoint` (`"POST /nodes/{node}/lxc"`).
    pub fn requests(&self, endpoint: &str) -> u64 {
        self.sim.stats()["requests"][endpoint].as_u64().unwrap_or(0)
    }

    /// Waits until the inventory shows `vmid`.
    pub async fn wait_for_guest(&self, vmid: u32) {
        for _ in 0..100 {
            if self.handle.snapshot().is_some_and(|s| s.guests.contains_key(&vmid)) {
                return;
            }
            self.handle.refresh.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("CT {vmid} never appeared in the inventory");
    }
}

/// The API path of a namespaced pve.lxc.dev object.
pub fn path(ns: &str, plural: &str, name: &str) -> String {
    format!("/apis/pve.lxc.dev/v1alpha1/namespaces/{ns}/{plural}/{name}")
}
