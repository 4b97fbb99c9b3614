//! A container's console in a real browser (headless Chromium over the DevTools protocol) on
//! the real apiserver, the simulator and the operator: the owner opens the Console of a
//! container running the simulator's counter fixture (an OCI image whose entrypoint prints
//! numbered lines to `/dev/console`), sees its output in xterm.js, types and sees the echo; the
//! page has no CSP violation, no serious axe-core finding and no overflow at 390 px. A viewer
//! (no `create` on `lxccontainers/console`) is offered no Console and the websocket refuses
//! them even when asked directly; a cross-site websocket is refused too. The container's
//! Proxmox tasks list with status and duration, a task's log opens on click, and a user who may
//! not read the container gets neither through the operator.
//! Screenshots go to `$CARGO_TARGET_TMPDIR/ui-screenshots/`.

#[path = "common/browser.rs"]
mod browser;
mod common;
use browser::*;
use common::ui::*;
use common::*;
use serde_json::json;

/// Applies an `LxcContainer` `name` running the simulator's counter fixture.
fn counter(cp: &ControlPlane, ns: &str, name: &str) {
    let manifest = format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    image: {{reference: \"ghcr.io/example/counter:1.0\"}}\n  rootfs: {{storage: local-lvm, size: 2Gi}}\n  app:\n    env:\n      - {{name: COUNTER_INTERVAL_MS, value: \"500\"}}\n"
    );
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The text xterm.js shows (its DOM renderer's rows).
const SCREEN: &str = "(document.querySelector('#terminal .xterm-rows') || {textContent: ''}).textContent";

/// Opens a websocket to `url` from `page` (a same-origin page of the UI, or another origin)
/// and says how it ended: `open` or `refused`.
fn try_socket(url: &str) -> String {
    format!(
        "new Promise(r => {{ const w = new WebSocket({url:?}); w.onopen = () => {{ w.close(); r('open'); }}; w.onerror = () => r('refused'); }})"
    )
}

#[tokio::test]
async fn the_owner_types_into_a_containers_console_and_a_viewer_is_offered_none() {
    let Some(bin) = chromium() else {
        eprintln!("SKIP: chromium is not installed and `apt-get install chromium` failed");
        return;
    };
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-console");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    counter(cp, &ns, "app");
    let port = free_port();
    let op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    wait_ready(cp, &ns, "lxc", "app", T);
    let owner = sa_token(cp, &ns, "owner", ADMIN_RULES);
    let viewer = sa_token(cp, &ns, "viewer", VIEWER_RULES);

    // 1. the owner opens the Console from the container's page
    let mut b = Browser::launch(bin).await;
    b.goto(&format!("{base}/ui/login")).await;
    b.fill(&[("token", owner.as_str()), ("namespace", ns.as_str())]).await;
    b.click_and_wait("#login button", &format!("{base}/ui/containers"))
        .await;
    b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    b.click_and_wait("#console-link", &format!("{base}/ui/containers/{ns}/app/console"))
        .await;
    b.wait(
        "the console to connect",
        "document.getElementById('terminal').dataset.state === 'open'",
    )
    .await;

    // 2. the container's output shows, and what is typed reaches it (the console echoes)
    b.wait(
        "the counter's lines in the terminal",
        &format!("{SCREEN}.includes(': line ')"),
    )
    .await;
    b.eval("document.querySelector('#terminal textarea').focus(); true")
        .await;
    // typed key by key, as a keyboard does
    for c in "hello-from-the-browser".chars() {
        let key = c.to_string();
        b.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyDown", "key": key, "text": key, "unmodifiedText": key}),
        )
        .await;
        b.call("Input.dispatchKeyEvent", json!({"type": "keyUp", "key": key}))
            .await;
    }
    b.wait(
        "the typed text echoed by the container's console",
        &format!("{SCREEN}.includes('hello-from-the-browser')"),
    )
    .await;
    b.screenshot("console-1-output-and-input").await;
    b.axe("console").await;

    // 3. the container's Proxmox tasks: the console's own (vncproxy) among them, with a log
    b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    b.click_and_wait("#tasks-link", &format!("{base}/ui/containers/{ns}/app/tasks"))
        .await;
    let kinds = b
        .eval("[...document.querySelectorAll('#tasks tbody tr')].map(r => r.cells[0].textContent + ' ' + r.cells[1].textContent)")
        .await;
    let kinds: Vec<String> = serde_json::from_value(kinds).unwrap();
    assert!(kinds.contains(&"vzstart OK".to_string()), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("vncproxy")), "{kinds:?}");
    assert!(
        b.eval("document.getElementById('tasks').textContent.includes('!')")
            .await
            == false,
        "no API token name is shown"
    );
    b.screenshot("tasks-1-list").await;
    b.axe("tasks").await;
    b.eval("[...document.querySelectorAll('#tasks tbody a')].find(a => a.textContent === 'vzstart').click(); true")
        .await;
    b.wait(
        "the task's log",
        "document.getElementById('task-log') && document.getElementById('task-log').textContent.includes('TASK OK')",
    )
    .await;
    b.screenshot("tasks-2-log").await;
    b.axe("task log").await;
    let upid = b.eval("document.querySelector('.upid').textContent").await;
    let upid = upid.as_str().unwrap().to_string();

    // a user who may not read the container gets no task and no log through the operator
    let stranger = sa_token(
        cp,
        &ns,
        "stranger",
        r#"[{"apiGroups":[""],"resources":["events"],"verbs":["list"]}]"#,
    );
    let c = UiClient::new(&base);
    c.login(&stranger, &ns);
    let (code, body) = c.get(&format!("/ui/containers/{ns}/app/tasks"));
    assert_eq!(code, 403, "{body}");
    assert!(!body.contains("vzstart"), "{body}");
    let q: String = url::form_urlencoded::byte_serialize(upid.as_bytes()).collect();
    let (code, body) = c.get(&format!("/ui/containers/{ns}/app/tasks/log?upid={q}"));
    assert_eq!(code, 403, "{body}");
    assert!(!body.contains("TASK OK"), "{body}");

    // the usage charts over 24 h: the range is chosen by a link, values in a table for screen readers
    b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    b.click_and_wait("#range-24h", &format!("{base}/ui/containers/{ns}/app"))
        .await;
    assert_eq!(
        b.eval("document.querySelector('nav.range a[aria-current]').textContent")
            .await,
        "24 h"
    );
    b.wait(
        "a usage sample in the screen readers' table",
        "document.querySelectorAll('#usage-values tbody tr').length > 0 || (location.reload(), false)",
    )
    .await;
    b.eval("document.getElementById('h-usage').scrollIntoView(); true")
        .await;
    b.screenshot("usage-24h").await;

    // 4. a websocket from another origin is refused (the page's own worked above)
    let ws_url = format!("{}/ui/containers/{ns}/app/console/ws", base.replace("http://", "ws://"));
    b.goto("about:blank").await;
    assert_eq!(b.eval(&try_socket(&ws_url)).await, "refused", "cross-site console");

    // the owner's own cookie from another site's page: refused by its Origin (the same request
    // from this UI's origin is upgraded)
    let c = UiClient::new(&base);
    c.login(&owner, &ns);
    let ws_path = format!("/ui/containers/{ns}/app/console/ws");
    let upgrade = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let evil = [&upgrade[..], &["Origin: https://evil.example"]].concat();
    assert_eq!(c.get_with(&ws_path, &evil).0, 403, "a cross-site console");
    let own_origin = format!("Origin: {base}");
    let own = [&upgrade[..], &[own_origin.as_str()]].concat();
    assert_eq!(c.get_with(&ws_path, &own).0, 101, "the UI's own origin");

    // 5. narrow screen
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    b.goto(&format!("{base}/ui/containers/{ns}/app/console")).await;
    b.wait(
        "the console to connect at 390 px",
        "document.getElementById('terminal').dataset.state === 'open'",
    )
    .await;
    b.screenshot("narrow-390-console").await;
    assert_eq!(b.eval(OVERFLOW).await, "", "the console overflows at 390 px");
    for (page, name) in [
        (format!("/ui/containers/{ns}/app/tasks"), "tasks"),
        (format!("/ui/containers/{ns}/app/tasks/log?upid={q}"), "task-log"),
    ] {
        b.goto(&format!("{base}{page}")).await;
        b.screenshot(&format!("narrow-390-{name}")).await;
        assert_eq!(b.eval(OVERFLOW).await, "", "{page} overflows at 390 px");
    }
    b.call("Emulation.clearDeviceMetricsOverride", json!({})).await;

    // 6. a viewer sees no Console, and the page and the websocket refuse them
    b.goto(&format!("{base}/ui/containers?ns={ns}")).await;
    b.click_and_wait("form.signout button", &format!("{base}/ui/login"))
        .await;
    b.fill(&[("token", viewer.as_str()), ("namespace", ns.as_str())]).await;
    b.click_and_wait("#login button", &format!("{base}/ui/containers"))
        .await;
    b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    assert_eq!(b.eval("document.querySelectorAll('#console-link').length").await, 0);
    assert!(
        b.eval("document.getElementById('not-offered').textContent.includes('lxccontainers/console')")
            .await
            == true
    );
    b.screenshot("console-2-viewer-without-console").await;
    b.goto(&format!("{base}/ui/containers/{ns}/app/console")).await;
    assert!(
        b.eval("document.querySelector('.error').textContent.includes('create on lxccontainers/console')")
            .await
            == true
    );
    assert_eq!(b.eval("document.querySelectorAll('#terminal').length").await, 0);
    assert_eq!(b.eval(&try_socket(&ws_url)).await, "refused", "a viewer's websocket");
    b.screenshot("console-3-viewer-refused").await;
    let violations = b.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");
    // 7. each session is in the operator's log with the user, the container, start and end
    let who = format!("system:serviceaccount:{ns}:owner");
    wait_for("the console sessions in the audit log", T, || {
        let log = op.log();
        let closed = log
            .lines()
            .filter(|l| l.contains("web UI: console closed") && l.contains(&who) && l.contains(&format!("{ns}/app")))
            .count();
        (log.contains("web UI: console opened") && closed >= 2).then_some(())
    });
    drop(sim);
}
