//! The browser the web UI tests drive: Debian's headless Chromium over the DevTools protocol
//! (CDP over a websocket), with axe-core and a horizontal-overflow check. Included by
//! `tests/ui_browser.rs` and `tests/ui_console.rs` (`#[path]`).
#![allow(dead_code)]

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How long a browser step may take.
pub const T: Duration = Duration::from_secs(60);

/// axe-core's `axe.min.js`, installed (once) by tests/scripts/npm-tools.sh into a cache dir.
pub fn axe_path() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/npm-tools.sh");
        let out = Command::new("bash").arg(script).output().expect("run npm-tools.sh");
        assert!(
            out.status.success(),
            "npm-tools.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    })
    .clone()
}

/// Debian's chromium, installed with apt-get when missing; `None` only when it cannot be.
pub fn chromium() -> Option<&'static str> {
    let found = |name: &str| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !found("chromium") {
        let _ = Command::new("sh")
            .args(["-c", "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null 2>&1; }"])
            .status();
    }
    found("chromium").then_some("chromium")
}

/// A headless Chromium and one page of it, attached through a flat CDP session.
pub struct Browser {
    child: std::process::Child,
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    session: String,
    next_id: u64,
    /// Every event received so far (method, params).
    pub events: Vec<(String, Value)>,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch(bin: &str) -> Browser {
        use std::io::BufRead;
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx.recv_timeout(T).expect("chromium printed its DevTools address");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to CDP");
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"})).await;
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(domain, json!({})).await;
        }
        b
    }

    /// Sends a CDP command (to the page once attached) and waits for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).await.expect("CDP send");
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no CDP answer to {method}"))
                .expect("CDP connection open")
                .expect("CDP frame");
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
            if let Some(m) = v["method"].as_str() {
                self.events.push((m.to_string(), v["params"].clone()));
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r["exceptionDetails"].is_null(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true`.
    pub async fn wait(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + T;
        while self.eval(&format!("!!({expr})")).await != true {
            if Instant::now() > deadline {
                self.screenshot("timed-out").await;
                let at = self
                    .eval("location.href + ' ' + document.body.innerText.slice(0, 2000)")
                    .await;
                panic!("timed out waiting for {what} (screenshot timed-out.png); the page: {at}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait(
            url,
            &format!("location.href === {:?} && document.readyState === 'complete'", url),
        )
        .await;
    }

    /// Sets the values of form fields by element id.
    pub async fn fill(&mut self, fields: &[(&str, &str)]) {
        for (id, value) in fields {
            self.eval(&format!("document.getElementById({id:?}).value = {value:?}; true"))
                .await;
        }
    }

    /// Clicks the element `selector` and waits for the page at `url` (its path: query and
    /// fragment are not compared).
    pub async fn click_and_wait(&mut self, selector: &str, url: &str) {
        self.eval("window.beforeClick = 1; true").await;
        self.eval(&format!("document.querySelector({selector:?}).click(); true"))
            .await;
        self.wait(
            url,
            &format!(
                "!window.beforeClick && location.href.split('#')[0].split('?')[0] === {url:?} && document.readyState === 'complete'"
            ),
        )
        .await;
    }

    pub async fn screenshot(&mut self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs axe-core (its npm package, installed by tests/scripts/npm-tools.sh outside the repo)
    /// in the page; panics on any serious or critical violation.
    pub async fn axe(&mut self, page: &str) {
        if self.eval("typeof window.axe").await != "object" {
            let src = std::fs::read_to_string(axe_path()).expect("axe.min.js");
            let r = self.call("Runtime.evaluate", json!({"expression": src})).await;
            assert!(r["exceptionDetails"].is_null(), "axe: {}", r["exceptionDetails"]);
        }
        let found = self
            .eval(
                "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations \
                 .filter(v => v.impact === 'serious' || v.impact === 'critical') \
                 .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))",
            )
            .await;
        assert_eq!(found, json!([]), "axe-core on {page}: {found:#}");
    }

    /// Console and log lines that mention the Content-Security-Policy.
    pub fn csp_violations(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|(m, _)| m == "Log.entryAdded" || m == "Runtime.consoleAPICalled" || m == "Runtime.exceptionThrown")
            .map(|(_, p)| p.to_string())
            .filter(|p| p.contains("Content Security Policy") || p.contains("Content-Security-Policy"))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the page is wider than the window (horizontal overflow), with what sticks out.
pub const OVERFLOW: &str = "(() => { const w = document.documentElement.clientWidth; \
    const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1 \
      && !e.closest('table, nav, pre')).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5); \
    return document.documentElement.scrollWidth > w ? 'scrollWidth ' + document.documentElement.scrollWidth + ' > ' + w + ': ' + wide.join(' ') : ''; })()";
