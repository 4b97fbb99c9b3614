//! Helpers of the web UI tests: ServiceAccount tokens with a Role, and a curl-driven client
//! that signs in and keeps the session cookie.

use super::*;

/// Rules of a Role that may do everything with the `pve.lxc.dev` objects and read Events.
pub const ADMIN_RULES: &str = r#"[{"apiGroups":["pve.lxc.dev"],"resources":["*"],"verbs":["*"]},
  {"apiGroups":[""],"resources":["events"],"verbs":["get","list","watch"]}]"#;

/// Rules of a read-only Role over the `pve.lxc.dev` objects.
pub const VIEWER_RULES: &str = r#"[{"apiGroups":["pve.lxc.dev"],"resources":["*"],"verbs":["get","list","watch"]}]"#;

/// Creates ServiceAccount `name` in `ns` bound to a Role with `rules` (JSON), and returns a
/// token for it (TokenRequest, as `kubectl create token` makes).
pub fn sa_token(cp: &ControlPlane, ns: &str, name: &str, rules: &str) -> String {
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
  {{"apiVersion":"v1","kind":"ServiceAccount","metadata":{{"name":"{name}"}}}},
  {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{{"name":"{name}"}},"rules":{rules}}},
  {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"{name}"}},
    "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"{name}"}},
    "subjects":[{{"kind":"ServiceAccount","name":"{name}","namespace":"{ns}"}}]}}]}}"#
    );
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cp.kubectl_ok(&["create", "token", name, "-n", ns, "--duration", "1h"])
        .trim()
        .to_string()
}

/// A browser-less UI client: curl with a cookie jar.
pub struct UiClient {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    jar: tempfile::NamedTempFile,
}

impl UiClient {
    /// A client of the UI at `base`, not signed in.
    pub fn new(base: &str) -> UiClient {
        UiClient {
            base: base.to_string(),
            jar: tempfile::NamedTempFile::new().unwrap(),
        }
    }

    fn curl(&self, args: &[&str]) -> (u16, String) {
        let jar = self.jar.path().to_str().unwrap();
        let out = Command::new("curl")
            .args(["-s", "-b", jar, "-c", jar, "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// GET `path` for at most `secs` seconds (a stream): the body read by then.
    pub fn get_for(&self, path: &str, secs: u32) -> String {
        self.curl(&["--max-time", &secs.to_string(), &format!("{}{path}", self.base)])
            .1
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.curl(&[&format!("{}{path}", self.base)])
    }

    /// GET `path` with extra request `headers` (`Name: value`), for at most 3 seconds (an
    /// upgraded connection stays open): status and body.
    pub fn get_with(&self, path: &str, headers: &[&str]) -> (u16, String) {
        let mut args = vec!["--max-time".to_string(), "3".into(), format!("{}{path}", self.base)];
        for h in headers {
            args.push("-H".into());
            args.push(h.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&args)
    }

    /// POST a form (`k=v` pairs, url-encoded by curl) to `path`: status and body.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut args = vec![format!("{}{path}", self.base)];
        for (k, v) in form {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&args)
    }

    /// Signs in with `token`, lists starting in `ns`; panics unless the UI accepts it.
    pub fn login(&self, token: &str, ns: &str) {
        let (code, body) = self.post("/ui/login", &[("token", token), ("namespace", ns)]);
        assert_eq!(code, 303, "sign-in refused: {body}");
    }

    /// The CSRF token of the session (read from a page's form).
    pub fn csrf(&self) -> String {
        let (_, body) = self.get("/ui/new");
        let at = body.find("name=\"csrf\" value=\"").expect("a form with the CSRF token") + 19;
        body[at..at + 64].to_string()
    }
}

/// Waits until the UI answers on `port`.
pub fn wait_ui(port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let c = UiClient::new(&base);
    wait_for("the web UI to listen", Duration::from_secs(60), || {
        (c.get("/ui/login").0 == 200).then_some(())
    });
    base
}

/// Applies an `LxcContainer` `name` in `ns` from an OS template, with `description` (free text:
/// where the tests put hostile strings).
pub fn container(cp: &ControlPlane, ns: &str, name: &str, description: &str) {
    let manifest = format!(
        r#"{{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcContainer","metadata":{{"name":"{name}"}},
  "spec":{{"source":{{"osTemplate":"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}},"description":{}}}}}"#,
        serde_json::to_string(description).unwrap()
    );
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
