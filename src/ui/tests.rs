//! Handler tests without an apiserver: sign-in page, CSRF refusal, security headers, escaping.

use super::model::ContainerRow;
use super::pages::RowFragment;
use super::*;
use askama::Template;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

fn state() -> AppState {
    let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
    AppState::new(config, Options::default())
}

fn signed_in(state: &AppState) -> Arc<Session> {
    let client = state.client_for("token").unwrap();
    state
        .sessions()
        .create_at(client, "apps".into(), "alice".into(), std::time::Instant::now())
        .unwrap()
}

async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = router(state.clone()).oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

fn post(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, format!("{}={cookie}", session::COOKIE))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

#[tokio::test]
async fn every_answer_carries_a_strict_content_security_policy() {
    let st = state();
    let (status, headers, body) = send(&st, Request::get("/ui/login").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(body.contains("name=\"token\""));
    assert!(
        !body.contains("<script>") && !body.contains(" style="),
        "no inline script or style"
    );
    let (_, headers, _) = send(&st, Request::get("/ui/nowhere").body(Body::empty()).unwrap()).await;
    assert!(headers.contains_key("content-security-policy"));
}

#[tokio::test]
async fn pages_without_a_session_send_the_user_to_sign_in() {
    let st = state();
    for path in [
        "/ui",
        "/ui/containers",
        "/ui/templates",
        "/ui/schedules",
        "/ui/new",
        "/ui/events",
    ] {
        let (status, headers, _) = send(&st, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(headers[header::LOCATION], "/ui/login", "{path}");
    }
    let (status, headers, _) = send(&st, post("/ui/containers/a/b/state", "forged", "state=Stopped")).await;
    assert_eq!(
        (status, &headers[header::LOCATION]),
        (StatusCode::SEE_OTHER, &HeaderValue::from_static("/ui/login"))
    );
}

#[tokio::test]
async fn an_action_without_the_sessions_csrf_token_is_refused_before_any_kubernetes_call() {
    let st = state();
    let s = signed_in(&st);
    for (path, form) in [
        ("/ui/containers/apps/web/state", "state=Stopped".to_string()),
        ("/ui/containers/apps/web/state", "state=Stopped&csrf=0000".to_string()),
        ("/ui/containers/apps/web/backup", format!("csrf={}x", s.csrf)),
        ("/ui/containers/apps/web/delete", "confirm=web".to_string()),
        ("/ui/containers/apps/web/restore", "backup=b&new_name=c".to_string()),
        ("/ui/backups/apps/b/restore", "new_name=c".to_string()),
        ("/ui/containers/apps/web/snapshots", "description=d".to_string()),
        (
            "/ui/containers/apps/web/snapshots/s/rollback",
            "confirm=yes".to_string(),
        ),
        ("/ui/containers/apps/web/snapshots/s/delete", "confirm=yes".to_string()),
        ("/ui/new", "namespace=apps&name=x".to_string()),
        ("/ui/logout", String::new()),
    ] {
        let (status, _, body) = send(&st, post(path, &s.id, &form)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} {form}");
        assert!(body.contains("CSRF"), "{body}");
    }
    assert!(
        st.sessions().get(&s.id).is_some(),
        "a refused sign-out leaves the session"
    );
}

#[tokio::test]
async fn a_cross_site_post_is_refused() {
    let st = state();
    let s = signed_in(&st);
    let mut req = post("/ui/logout", &s.id, &format!("csrf={}", s.csrf));
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_static("ui.example"));
    req.headers_mut()
        .insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
    let (status, _, _) = send(&st, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, _) = send(&st, post("/ui/logout", &s.id, &format!("csrf={}", s.csrf))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert!(st.sessions().get(&s.id).is_none(), "signed out");
}

#[tokio::test]
async fn a_malformed_token_is_refused_on_the_sign_in_page() {
    let (status, _, body) = send(&state(), post("/ui/login", "", "token=a+b&namespace=apps")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("login-error"));
}

#[test]
fn hostile_text_in_a_containers_status_renders_as_text() {
    let hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    let obj = serde_json::json!({"kind": "LxcContainer", "metadata": {"namespace": "apps", "name": "web"},
        "spec": {"description": hostile},
        "status": {"state": hostile, "ipAddresses": [hostile],
                   "conditions": [{"type": "Ready", "status": "False", "reason": hostile, "message": hostile}]}});
    let row = ContainerRow::of(&obj, jiff::Timestamp::now());
    let html = RowFragment {
        row: &row,
        csrf: "t",
        can_patch: true,
    }
    .render()
    .unwrap();
    assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    let page = super::pages::error_page(StatusCode::FORBIDDEN, hostile);
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_embedded_assets_are_served_and_unknown_ones_are_not() {
    let st = state();
    let (status, headers, body) = send(&st, Request::get("/ui/assets/ui.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(body.contains("EventSource"));
    let (status, _, body) = send(&st, Request::get("/ui/assets/style.css").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("prefers-color-scheme: dark"));
    let (status, _, _) = send(
        &st,
        Request::get("/ui/assets/../Cargo.toml").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn usage_charts_are_drawn_from_the_samples_in_the_box_and_none_without_samples() {
    use crate::controller::cluster::samples::Sample;
    assert_eq!(super::model::usage_chart(&[]), None);
    let s = |at: i64, cpu: f64, mem: u64| Sample {
        at,
        cpu,
        mem,
        maxmem: 1000,
    };
    let c = super::model::usage_chart(&[s(0, 0.0, 0), s(60, 0.5, 500), s(120, 1.0, 1000)]).unwrap();
    assert_eq!(c.cpu_points, "0.0,60.0 150.0,31.0 300.0,2.0");
    assert_eq!(c.mem_points, c.cpu_points);
    assert_eq!(c.last_cpu, "100.0%");
    assert_eq!(c.span, "the last 2 min");
    // one sample: a point in the middle
    let one = super::model::usage_chart(&[s(5, 0.25, 0)]).unwrap();
    assert_eq!(one.cpu_points, "150.0,45.5");
}

#[test]
fn a_day_of_samples_reads_in_hours_for_the_axis_and_for_screen_readers() {
    use crate::controller::cluster::samples::Sample;
    let day: Vec<Sample> = (0..=96)
        .map(|i| Sample {
            at: i * 900,
            cpu: 0.1,
            mem: 100,
            maxmem: 1000,
        })
        .collect();
    let c = super::model::usage_chart(&day).unwrap();
    assert_eq!(c.span, "the last 24 h");
    assert_eq!(c.values[0].0, "now");
    assert_eq!(c.values[1].0, "2 h 15 min ago", "{:?}", c.values);
    assert!(c.values.len() <= 13, "{}", c.values.len());
    assert_eq!(c.values[1].1, "10.0%");
}

#[tokio::test]
async fn an_error_page_keeps_the_navigation_for_a_signed_in_user_and_shows_no_debug_dump() {
    let st = state();
    let s = signed_in(&st);
    let req = Request::get("/ui/nowhere")
        .header(header::COOKIE, format!("{}={}", session::COOKIE, s.id))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&st, req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("action=\"/ui/logout\"") && body.contains("href=\"/ui/containers?ns=apps\""),
        "{body}"
    );
    assert!(
        !body.contains("href=\"/ui/login\""),
        "signed in: no sign-in link: {body}"
    );
    // without a session: the sign-in link, no navigation
    let (_, _, body) = send(&st, Request::get("/ui/nowhere").body(Body::empty()).unwrap()).await;
    assert!(
        body.contains("href=\"/ui/login\"") && !body.contains("/ui/logout"),
        "{body}"
    );
    // an apiserver refusal reads as a sentence, never as kube's debug dump of the answer
    let refusal = kube::Error::Api(Box::new(kube::core::Status {
        message: "lxccontainers.pve.lxc.dev is forbidden: User \"bob\" cannot patch".into(),
        reason: "Forbidden".into(),
        code: 403,
        ..Default::default()
    }));
    let e = UiError::from(refusal);
    for text in [e.message(), e.to_string()] {
        assert!(
            !text.contains("ErrorResponse") && !text.contains("Status {") && !text.contains("Some("),
            "{text}"
        );
        assert!(text.contains("cannot patch"), "{text}");
    }
}

#[test]
fn the_session_cookie_is_secure_when_the_request_came_over_https() {
    let st = state();
    let mut h = HeaderMap::new();
    assert!(!actions::secure(&st, &h), "plain http, not configured");
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    assert!(actions::secure(&st, &h));
    let mut h = HeaderMap::new();
    h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4;proto=https"));
    assert!(actions::secure(&st, &h));
    let configured = AppState::new(
        kube::Config::new("https://127.0.0.1:1".parse().unwrap()),
        Options {
            secure_cookies: true,
            ..Default::default()
        },
    );
    assert!(actions::secure(&configured, &HeaderMap::new()));
}

#[test]
fn a_viewer_is_offered_no_action_on_a_containers_page_and_told_why() {
    use super::access::Access;
    use super::detail::{Detail, DetailFragment};
    let obj = serde_json::json!({"kind": "LxcContainer", "metadata": {"namespace": "apps", "name": "web"},
        "spec": {"state": "Running"}, "status": {"vmid": 101, "state": "running"}});
    let viewer = Detail::of(&obj, "t", Access::default());
    let html = DetailFragment { live: &viewer }.render().unwrap();
    for action in ["value=\"Stopped\"", "/backup", "/delete"] {
        assert!(!html.contains(action), "{action}: {html}");
    }
    assert!(html.contains("patch lxccontainers"), "{html}");
    let admin = Detail::of(&obj, "t", Access::ALL);
    let html = DetailFragment { live: &admin }.render().unwrap();
    for action in ["value=\"Stopped\"", "/backup", "/delete"] {
        assert!(html.contains(action), "{action}: {html}");
    }
    // not yet in Proxmox: no start, stop or backup even for an admin
    let pending =
        serde_json::json!({"kind": "LxcContainer", "metadata": {"namespace": "apps", "name": "new"}, "spec": {}});
    let html = DetailFragment {
        live: &Detail::of(&pending, "t", Access::ALL),
    }
    .render()
    .unwrap();
    assert!(
        !html.contains("value=\"Stopped\"") && !html.contains("/backup") && html.contains("/delete"),
        "{html}"
    );
}
