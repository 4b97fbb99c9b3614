//! Helpers shared by the simulator tests (`mod sim_util;` in each `tests/sim_*.rs`).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use proxmox_lxc_operator::sim::{start, SimConfig, SimHandle};
use serde_json::Value;

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// A plain HTTP client for the simulator (trusts its certificate).
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub auth: Option<String>,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub fn http_client(sim: &SimHandle) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(sim.cert_der().to_vec()))
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Client with the sim's default token.
pub fn client(sim: &SimHandle) -> Client {
    Client {
        http: http_client(sim),
        base: sim.base_url(),
        auth: Some(sim.token_header()),
        cookie: None,
        csrf: None,
    }
}

/// A fast in-process simulator (tasks take tens of ms, seed 1).
pub async fn fast_sim() -> SimHandle {
    start(SimConfig::fast()).await.unwrap()
}

pub fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/sim/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))).unwrap()
}

impl Client {
    pub async fn call(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        let url = format!("{}/api2/json{path}", self.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m.clone(), &url);
        if let Some(a) = &self.auth {
            rb = rb.header("Authorization", a);
        }
        if let Some(c) = &self.cookie {
            rb = rb.header("Cookie", format!("PVEAuthCookie={c}"));
        }
        if let Some(c) = &self.csrf {
            rb = rb.header("CSRFPreventionToken", c);
        }
        if !form.is_empty() {
            rb = if method == "GET" || method == "DELETE" {
                rb.query(form)
            } else {
                rb.form(form)
            };
        }
        let r = rb.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let reason = r
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .unwrap_or_else(|| r.status().canonical_reason().unwrap_or("").to_string());
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            reason,
            body,
            text,
        }
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[]).await
    }
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("POST", path, form).await
    }
    pub async fn put(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("PUT", path, form).await
    }
    pub async fn delete(&self, path: &str, q: &[(&str, &str)]) -> Resp {
        self.call("DELETE", path, q).await
    }

    /// Expect 200 with a UPID and wait for the task; returns its final status object.
    pub async fn task(&self, r: Resp) -> Value {
        assert_eq!(r.status, 200, "{} {}", r.reason, r.text);
        let upid = r
            .data()
            .as_str()
            .unwrap_or_else(|| panic!("no UPID: {}", r.text))
            .to_string();
        self.wait(&upid).await
    }

    pub async fn wait(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.get(&format!("/nodes/{node}/tasks/{}/status", enc(upid))).await;
            assert_eq!(s.status, 200, "{}", s.text);
            if s.data()["status"] == "stopped" {
                return s.data().clone();
            }
            assert!(Instant::now() < deadline, "task {upid} did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Expect a task that ends OK.
    pub async fn ok_task(&self, r: Resp) -> Value {
        let s = self.task(r).await;
        assert_eq!(s["exitstatus"], "OK", "{s}");
        s
    }

    /// Create a CT from the preloaded Debian template and wait for it.
    pub async fn create_ct(&self, node: &str, vmid: u32, extra: &[(&str, &str)]) {
        let id = vmid.to_string();
        let mut form = vec![
            ("vmid", id.as_str()),
            ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
            ("rootfs", "local-lvm:8"),
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
        ];
        form.extend_from_slice(extra);
        let r = self.post(&format!("/nodes/{node}/lxc"), &form).await;
        self.ok_task(r).await;
    }
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}
