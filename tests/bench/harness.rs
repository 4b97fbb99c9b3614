//! What the benchmarks share: machine facts, percentiles, an in-process simulator client,
//! metrics parsing and result files.
#![allow(dead_code)]

use super::common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
pub fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

// ---------------------------------------------------------------------------- machine

pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({"nproc": nproc, "cpu_model": cpu, "loadavg": loadavg(), "commit": commit, "date": jiff::Timestamp::now().to_string(),
           "build": if cfg!(debug_assertions) { "debug" } else { "release" }})
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Two fields of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, keys: [&str; 2]) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb(keys[0]), kb(keys[1]))
}

/// (VmRSS, VmHWM) of a process in MiB.
pub fn rss(pid: u32) -> (f64, f64) {
    status_mib(pid, ["VmRSS:", "VmHWM:"])
}

/// (RssAnon, RssFile) of a process in MiB: the heap, stacks and other private memory, and the
/// mapped file pages (mostly the binary's own code and data).
pub fn rss_parts(pid: u32) -> (f64, f64) {
    status_mib(pid, ["RssAnon:", "RssFile:"])
}

/// Profiling aid (bench only): with `BENCH_SMAPS=DIR`, copies the process's `/proc/PID/smaps` to
/// `DIR/<label>.smaps` (which mapping holds the RSS: heap, malloc arenas, stacks, the binary).
pub fn dump_smaps(pid: u32, label: &str) {
    if let Some(dir) = std::env::var_os("BENCH_SMAPS") {
        let to = std::path::Path::new(&dir).join(format!("{label}.smaps"));
        if let Err(e) = std::fs::copy(format!("/proc/{pid}/smaps"), &to) {
            eprintln!("  BENCH_SMAPS: {}: {e}", to.display());
        }
    }
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

// ---------------------------------------------------------------------------- simulator client

#[derive(Debug)]
pub struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// In-process HTTP client of the simulator (admin API and Proxmox API), so that polling
/// `/_sim/stats` every few milliseconds costs no process spawn.
#[derive(Clone)]
pub struct SimHttp {
    pub http: reqwest::Client,
    pub base: String,
}

impl SimHttp {
    pub fn new(url: &str) -> SimHttp {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .pool_max_idle_per_host(128)
            .build()
            .unwrap();
        SimHttp {
            http,
            base: url.to_string(),
        }
    }
    pub async fn get(&self, path: &str) -> Value {
        match self.http.get(format!("{}{path}", self.base)).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
    pub async fn post(&self, path: &str, body: Value) -> Value {
        match self.http.post(format!("{}{path}", self.base)).json(&body).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
    pub async fn api_post(&self, path: &str, form: &[(&str, String)]) -> Res<Value> {
        let r = self
            .http
            .post(format!("{}/api2/json{path}", self.base))
            .header(
                "Authorization",
                format!("PVEAPIToken={SIM_TOKEN_ID}={SIM_TOKEN_SECRET}"),
            )
            .form(form)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {v}").into());
        }
        Ok(v)
    }
    pub async fn stats(&self) -> Value {
        self.get("/_sim/stats").await
    }
}

/// Requests in a `/_sim/stats` answer other than the inventory read.
pub fn non_inventory(stats: &Value) -> u64 {
    stats["requests"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.ends_with("/cluster/resources"))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

pub fn metric_sum(metrics: &str, family: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with(family)
                && (l.as_bytes().get(family.len()) == Some(&b'{') || l.as_bytes().get(family.len()) == Some(&b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn kube_client(cp: &ControlPlane) -> Res<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig)?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    cfg.read_timeout = Some(Duration::from_secs(300));
    Ok(kube::Client::try_from(cfg)?)
}

pub fn parse_secs(s: &str) -> f64 {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: f64 = n.parse().unwrap_or(60.0);
    match unit {
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => n,
    }
}

pub fn out_dir() -> std::path::PathBuf {
    std::env::var("BENCH_OUT")
        .map(Into::into)
        .unwrap_or_else(|_| repo().join("tests/bench/results"))
}

pub fn write_result(name: &str, v: &Value, md: &str) {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(v).unwrap() + "\n",
    )
    .unwrap();
    let m = &v["machine"];
    let head = format!(
        "# {name}\n\nMachine: {} × {} (nproc {}), load average {} before / {} after; {} build, commit {}, {}.\n\n",
        m["nproc"],
        m["cpu_model"].as_str().unwrap_or(""),
        m["nproc"],
        v["load_before"].as_str().unwrap_or(""),
        v["load_after"].as_str().unwrap_or(""),
        m["build"].as_str().unwrap_or(""),
        m["commit"].as_str().unwrap_or(""),
        m["date"].as_str().unwrap_or("")
    );
    std::fs::write(dir.join(format!("{name}.md")), head + md).unwrap();
    eprintln!("wrote {}/{name}.json and .md", dir.display());
}
