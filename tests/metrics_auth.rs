//! `/metrics` behind `--metrics-auth`, on the real apiserver: a bearer token checked with a
//! TokenReview, its user's right to `get /metrics` with a SubjectAccessReview.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn metrics_need_a_token_allowed_to_read_them() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("metrics-auth");
    let op = Operator::start_with(cp, &ns, &["--metrics-auth"]);
    let port = op.http_port;
    wait_for("the listener", T, || {
        (http_get(port, "/healthz", None).0 == 200).then_some(())
    });
    let (code, body) = http_get(port, "/metrics", None);
    assert_eq!(code, 401, "no token: {body}");
    assert!(!body.contains("plo_"), "nothing of the metrics without a token: {body}");
    assert_eq!(
        http_get(port, "/metrics", Some("not-a-token")).0,
        401,
        "a token the apiserver does not know"
    );
    let token = service_account_token(cp, &ns, "scraper");
    let (code, body) = http_get(port, "/metrics", Some(&token));
    assert_eq!(code, 403, "a valid token without the reader role: {body}");
    assert!(
        body.contains("system:serviceaccount:") && !body.contains("plo_"),
        "{body}"
    );
    // the role Prometheus gets (the chart's <fullname>-metrics-reader), bound to the scraper
    let role = format!("{ns}-metrics-reader");
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
  {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{{"name":"{role}"}},
    "rules":[{{"nonResourceURLs":["/metrics"],"verbs":["get"]}}]}},
  {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{{"name":"{role}"}},
    "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"{role}"}},
    "subjects":[{{"kind":"ServiceAccount","name":"scraper","namespace":"{ns}"}}]}}
]}}"#
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // a refusal is not cached: the next scrape asks again and gets the metrics
    let body = wait_for("the metrics with the reader role", T, || {
        let (code, body) = http_get(port, "/metrics", Some(&token));
        (code == 200).then_some(body)
    });
    assert!(body.contains("# TYPE plo_reconcile_total counter"), "{body}");
    wait_for("/readyz open without a token", T, || {
        (http_get(port, "/readyz", None).0 == 200).then_some(())
    });
    let _ = cp.kubectl(&["delete", "clusterrolebinding", &role]);
    let _ = cp.kubectl(&["delete", "clusterrole", &role]);
    drop(op);
}
