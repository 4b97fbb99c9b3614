//! The web UI in a real browser: Debian's headless Chromium driven through the DevTools
//! protocol (CDP over a websocket), on the real apiserver + simulator + operator. A user signs
//! in, sees the containers table, stops a container and sees its row turn `stopped` live (SSE,
//! no reload), a hostile string renders as text, and no Content-Security-Policy violation is
//! logged. A namespace owner signs in with an empty namespace field and lands in their
//! ServiceAccount's namespace, a viewer is offered no action they cannot take, a `kubectl`
//! change shows on an open container page, and no page overflows a 390 px wide screen.
//! Screenshots of each step go to `$CARGO_TARGET_TMPDIR/ui-screenshots/`.

#[path = "common/browser.rs"]
mod browser;
mod common;
use browser::*;
use common::ui::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_user_signs_in_in_a_browser_and_sees_a_row_update_live_without_csp_violations() {
    let Some(bin) = chromium() else {
        eprintln!("SKIP: chromium is not installed and `apt-get install chromium` failed");
        return;
    };
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-browser");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let hostile = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";
    for name in ["web", "db"] {
        container(cp, &ns, name, hostile);
    }
    let port = free_port();
    let _op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    let vmid = wait_ready(cp, &ns, "lxc", "web", T)["status"]["vmid"].as_u64().unwrap();
    wait_ready(cp, &ns, "lxc", "db", T);
    let token = sa_token(cp, &ns, "alice", ADMIN_RULES);

    let mut b = Browser::launch(bin).await;
    b.goto(&format!("{base}/ui/login")).await;
    b.screenshot("login").await;
    b.eval(&format!(
        "document.getElementById('token').value = {:?}; document.getElementById('namespace').value = {:?}; \
         document.querySelector('#login button[type=submit]').click(); true",
        token, ns
    ))
    .await;
    let row = format!("ct-{ns}-web");
    b.wait("the containers table", &format!("document.getElementById('{row}')"))
        .await;
    b.wait(
        "live updates",
        "document.getElementById('containers').dataset.live === 'synced'",
    )
    .await;
    assert_eq!(
        b.eval("document.cookie").await,
        "",
        "the session cookie is HttpOnly: scripts cannot read it"
    );
    b.screenshot("containers").await;

    // Stop through the page's button: the form posts, the table comes back with the desired
    // state changed; the observed state then turns `stopped` in place, over SSE.
    b.eval(&format!(
        "document.querySelector('#{row} button[value=Stopped]').click(); true"
    ))
    .await;
    b.wait(
        "the table after the stop",
        &format!("document.querySelector('#{row} button[value=Running]') && document.getElementById('containers').dataset.live === 'synced'"),
    )
    .await;
    assert_eq!(get_json(cp, &ns, "lxc", "web").unwrap()["spec"]["state"], "Stopped");
    b.eval("window.notReloaded = 42; true").await;
    wait_for("the simulator's container to stop", T, || {
        sim.container(vmid)
            .is_some_and(|c| c["status"] == "stopped")
            .then_some(())
    });
    b.wait(
        "the row to show stopped",
        &format!("document.querySelector('#{row} .state').textContent.trim() === 'stopped'"),
    )
    .await;
    assert_eq!(b.eval("window.notReloaded").await, 42, "updated without a reload");
    b.screenshot("containers-live").await;

    // The hostile description is text on the container's page, and nothing ran.
    b.goto(&format!("{base}/ui/containers/{ns}/web")).await;
    let shown = b
        .eval("[...document.querySelectorAll('dd')].map(d => d.textContent).find(t => t.includes('pwned'))")
        .await;
    assert_eq!(shown, hostile);
    assert_eq!(b.eval("typeof window.pwned").await, "undefined");
    assert_eq!(b.eval("document.querySelectorAll('img, main script').length").await, 0);
    b.screenshot("container").await;

    // Back up now, from the container's page: the LxcBackup completes (seen on reload).
    b.click_and_wait(
        "#main form[action$='/backup'] button",
        &format!("{base}/ui/containers/{ns}/web"),
    )
    .await;
    let deadline = Instant::now() + T;
    while b
        .eval("[...document.querySelectorAll('#backups .phase')].some(p => p.textContent === 'Completed')")
        .await
        != true
    {
        assert!(Instant::now() < deadline, "the backup did not complete");
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.goto(&format!("{base}/ui/containers/{ns}/web")).await;
    }
    b.screenshot("container-backed-up").await;

    // Create through the wizard: a bad name first (the operator's own validation answers, once,
    // at the field), then a container with a NIC on the picked bridge and a disk on a picked
    // storage; the confirm step shows the YAML; the container reaches Running with an IP.
    // the wizard's pickers come from the cluster's status, which this user may read
    cp.kubectl_ok(&[
        "create",
        "clusterrole",
        &format!("{ns}-read-clusters"),
        "--verb=get,list",
        "--resource=proxmoxclusters.pve.lxc.dev",
    ]);
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &format!("{ns}-read-clusters"),
        &format!("--clusterrole={ns}-read-clusters"),
        &format!("--serviceaccount={ns}:alice"),
    ]);
    b.goto(&format!("{base}/ui/new?ns={ns}")).await;
    assert_eq!(b.eval("document.getElementById('f-storage').tagName").await, "SELECT");
    b.axe("new").await;
    b.screenshot("new").await;
    b.fill(&[
        ("f-name", "Made_In_UI"),
        ("f-os_template", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
        ("f-cores", "1"),
        ("f-memory_mib", "256"),
        ("f-bridge", "vmbr0"),
        ("f-ip", "dhcp"),
        ("f-disk_gib", "4"),
    ])
    .await;
    b.eval("const s = document.getElementById('f-storage'); s.value = [...s.options].map(o => o.value).find(v => v) || ''; true")
        .await;
    b.click_and_wait("button[value=check]", &format!("{base}/ui/new")).await;
    b.wait("the field's error", "document.getElementById('e-name')").await;
    assert_eq!(
        b.eval("document.querySelectorAll('.field-error, main .error').length")
            .await,
        1,
        "the complaint is shown once"
    );
    assert_eq!(
        b.eval("document.getElementById('f-name').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    b.screenshot("new-refused").await;
    b.axe("new-refused").await;
    assert!(get_json(cp, &ns, "lxc", "Made_In_UI").is_none());
    b.fill(&[("f-name", "made-in-ui")]).await;
    b.click_and_wait("button[value=check]", &format!("{base}/ui/new")).await;
    b.wait("the confirm step", "document.getElementById('confirm-yaml')")
        .await;
    let yaml = b.eval("document.getElementById('confirm-yaml').textContent").await;
    assert!(yaml.as_str().unwrap().contains("bridge: vmbr0"), "{yaml}");
    assert!(
        get_json(cp, &ns, "lxc", "made-in-ui").is_none(),
        "nothing created before the confirm"
    );
    b.screenshot("new-confirm").await;
    b.axe("new-confirm").await;
    b.click_and_wait("button[value=create]", &format!("{base}/ui/containers/{ns}/made-in-ui"))
        .await;
    let made = wait_for("made-in-ui Running with an IP", T, || {
        get_json(cp, &ns, "lxc", "made-in-ui")
            .filter(|o| {
                o["status"]["powerState"] == "running"
                    || o["status"]["state"] == "running"
                    || o["status"]["phase"] == "Running"
            })
            .filter(|o| o["status"]["ipAddresses"][0].is_string())
    });
    let made_vmid = made["status"]["vmid"].as_u64().unwrap();
    let cfg = sim.container(made_vmid).unwrap()["config"].clone();
    assert!(cfg["net0"].as_str().unwrap().contains("bridge=vmbr0"), "{cfg}");
    assert!(cfg["rootfs"].as_str().unwrap().contains("size=4G"), "{cfg}");

    // Edit memory on the container's page: applied in Proxmox.
    b.goto(&format!("{base}/ui/containers/{ns}/made-in-ui")).await;
    b.axe("container-made").await;
    b.click_and_wait("#edit-link", &format!("{base}/ui/containers/{ns}/made-in-ui/edit"))
        .await;
    assert_eq!(b.eval("document.getElementById('f-memory').value").await, "256");
    b.axe("edit").await;
    b.fill(&[("f-memory", "768")]).await;
    b.screenshot("edit").await;
    b.click_and_wait(
        "#edit-container button[type=submit]",
        &format!("{base}/ui/containers/{ns}/made-in-ui"),
    )
    .await;
    wait_for("the simulator's memory to be 768", T, || {
        (sim.container(made_vmid)?["config"]["memory"]
            .to_string()
            .trim_matches('"')
            == "768")
            .then_some(())
    });
    b.screenshot("edited").await;

    for page in ["/ui", "/ui/templates", "/ui/schedules", "/ui/new"] {
        b.goto(&format!("{base}{page}?ns={ns}")).await;
        let name = page.trim_start_matches("/ui").trim_start_matches('/');
        let name = if name.is_empty() { "clusters" } else { name };
        b.screenshot(name).await;
        b.axe(name).await;
    }
    for page in ["/ui/containers", "/ui/pods"] {
        b.goto(&format!("{base}{page}?ns={ns}")).await;
        b.axe(page).await;
    }
    b.goto(&format!("{base}/ui/containers/{ns}/web")).await;
    b.axe("container").await;
    // keyboard: the first Tab reaches the skip link
    b.call(
        "Input.dispatchKeyEvent",
        json!({"type": "keyDown", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}),
    )
    .await;
    assert_eq!(b.eval("document.activeElement.className").await, "skip");
    // dark
    b.call(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    b.goto(&format!("{base}/ui/containers?ns={ns}")).await;
    assert_eq!(
        b.eval("getComputedStyle(document.body).backgroundColor").await,
        "rgb(13, 17, 23)"
    );
    b.screenshot("containers-dark").await;

    let violations = b.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");
    // and the check can see one: an inline script injected now is blocked and reported
    b.eval("const s = document.createElement('script'); s.textContent = 'window.inlineRan = 1'; document.body.appendChild(s); true")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.csp_violations().is_empty() {
        assert!(Instant::now() < deadline, "a blocked inline script was not reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.eval("true").await;
    }
    assert_eq!(
        b.eval("typeof window.inlineRan").await,
        "undefined",
        "the CSP blocked it"
    );
}

#[tokio::test]
async fn a_namespace_owner_signs_in_without_naming_the_namespace_a_viewer_sees_no_action_it_cannot_take_and_a_kubectl_change_shows_live(
) {
    let Some(bin) = chromium() else {
        eprintln!("SKIP: chromium is not installed and `apt-get install chromium` failed");
        return;
    };
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-owner");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    container(cp, &ns, "app", "the namespace owner's container");
    let port = free_port();
    let _op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    let vmid = wait_ready(cp, &ns, "lxc", "app", T)["status"]["vmid"].as_u64().unwrap();
    let owner = sa_token(cp, &ns, "owner", ADMIN_RULES);
    let viewer = sa_token(cp, &ns, "viewer", VIEWER_RULES);

    // 1. sign in with the namespace field left empty: the ServiceAccount's namespace
    let mut b = Browser::launch(bin).await;
    b.goto(&format!("{base}/ui/login")).await;
    b.fill(&[("token", owner.as_str()), ("namespace", "")]).await;
    b.screenshot("owner-1-sign-in-empty-namespace").await;
    b.click_and_wait("#login button", &format!("{base}/ui/containers"))
        .await;
    b.wait(
        "the owner's container",
        &format!("document.getElementById('ct-{ns}-app')"),
    )
    .await;
    let flash = b.eval("document.getElementById('flash').textContent").await;
    assert!(
        flash
            .as_str()
            .unwrap()
            .contains(&format!("showing namespace {ns}, your ServiceAccount")),
        "{flash}"
    );
    assert_eq!(
        b.eval("document.querySelector('nav a[aria-current=page]').textContent")
            .await,
        "Containers"
    );
    b.wait(
        "live updates",
        "document.getElementById('containers').dataset.live === 'synced'",
    )
    .await;
    b.screenshot("owner-2-containers-of-own-namespace").await;

    // 2. the container's page follows a kubectl change without a reload
    b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    b.wait(
        "the detail page to go live",
        "document.getElementById('detail').dataset.live === 'synced'",
    )
    .await;
    b.eval("window.notReloaded = 7; true").await;
    b.screenshot("owner-3-detail-live").await;
    let t0 = Instant::now();
    cp.kubectl_ok(&[
        "patch",
        "-n",
        &ns,
        "lxc",
        "app",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"state":"Stopped"}}"#,
    ]);
    b.wait(
        "the kubectl change on the open page",
        "document.querySelector('#detail .desired').textContent === 'Stopped' && document.querySelector('#detail button[value=Running]')",
    )
    .await;
    let shown_after = t0.elapsed();
    assert!(shown_after < Duration::from_secs(5), "shown after {shown_after:?}");
    wait_for("the simulator's container to stop", T, || {
        sim.container(vmid)
            .is_some_and(|c| c["status"] == "stopped")
            .then_some(())
    });
    b.wait(
        "the observed state on the open page",
        "document.querySelector('#detail .state').textContent === 'stopped'",
    )
    .await;
    assert_eq!(b.eval("window.notReloaded").await, 7, "updated without a reload");
    eprintln!("a kubectl change showed on the open page after {shown_after:?}");
    b.screenshot("owner-4-detail-after-kubectl-stop").await;

    // 3. an action confirms itself
    b.click_and_wait(
        "#detail button[value=Running]",
        &format!("{base}/ui/containers/{ns}/app"),
    )
    .await;
    let flash = b.eval("document.getElementById('flash').textContent").await;
    assert!(
        flash
            .as_str()
            .unwrap()
            .starts_with(&format!("Start requested for {ns}/app")),
        "{flash}"
    );
    b.screenshot("owner-5-start-confirmed").await;

    // 4. a mistyped delete confirmation keeps the form, with the message
    b.goto(&format!("{base}/ui/containers/{ns}/app/delete")).await;
    b.fill(&[("confirm", "ap")]).await;
    b.click_and_wait(
        "#delete button[type=submit]",
        &format!("{base}/ui/containers/{ns}/app/delete"),
    )
    .await;
    assert_eq!(b.eval("document.getElementById('confirm').value").await, "ap");
    assert!(
        b.eval("document.querySelector('.error').textContent.includes('nothing was deleted')")
            .await
            == true
    );
    assert!(
        b.eval("!!document.querySelector('nav form.signout')").await == true,
        "navigation kept"
    );
    b.screenshot("owner-6-delete-mistyped").await;
    assert!(get_json(cp, &ns, "lxc", "app").is_some());

    // 5. narrow screen: no page overflows 390 px
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    for (page, name) in [
        (format!("/ui/containers?ns={ns}"), "containers"),
        (format!("/ui/containers/{ns}/app"), "detail"),
        (format!("/ui?ns={ns}"), "clusters"),
        (format!("/ui/templates?ns={ns}"), "templates"),
        (format!("/ui/schedules?ns={ns}"), "backups"),
        (format!("/ui/new?ns={ns}"), "new"),
        (format!("/ui/containers/{ns}/app/delete"), "delete"),
        (format!("/ui/containers/{ns}/nothing-here"), "not-found"),
    ] {
        b.goto(&format!("{base}{page}")).await;
        b.screenshot(&format!("narrow-390-{name}")).await;
        let overflow = b.eval(OVERFLOW).await;
        assert_eq!(overflow, "", "{page} overflows at 390 px");
    }
    b.call("Emulation.clearDeviceMetricsOverride", json!({})).await;

    // 6. snapshots: take one from the page
    b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    b.fill(&[("snapshot-description", "before the upgrade")]).await;
    b.click_and_wait("#take-snapshot button", &format!("{base}/ui/containers/{ns}/app"))
        .await;
    let deadline = Instant::now() + T;
    while b
        .eval("[...document.querySelectorAll('#snapshots .phase')].some(p => p.textContent === 'Ready')")
        .await
        != true
    {
        assert!(Instant::now() < deadline, "the snapshot did not become Ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    }
    b.eval("document.getElementById('h-snapshots').scrollIntoView(); true")
        .await;
    b.screenshot("owner-7-snapshot-taken").await;

    // 7. a deleted container's backup is restored from the Backups page
    b.click_and_wait(
        "#detail form[action$='/backup'] button",
        &format!("{base}/ui/containers/{ns}/app"),
    )
    .await;
    let deadline = Instant::now() + T;
    while b
        .eval("[...document.querySelectorAll('#backups .phase')].some(p => p.textContent === 'Completed')")
        .await
        != true
    {
        assert!(Instant::now() < deadline, "the backup did not complete");
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.goto(&format!("{base}/ui/containers/{ns}/app")).await;
    }
    cp.kubectl_ok(&["delete", "-n", &ns, "lxc", "app", "--timeout=60s"]);
    b.goto(&format!("{base}/ui/schedules?ns={ns}")).await;
    b.eval("document.querySelector('form[action$=\"/restore\"] input[name=new_name]').value = 'app-again'; true")
        .await;
    b.screenshot("owner-8-backups-page-restore").await;
    b.click_and_wait(
        "form[action$=\"/restore\"] button",
        &format!("{base}/ui/containers/{ns}/app-again"),
    )
    .await;
    b.wait(
        "the restored container running on its live page",
        "document.querySelector('#detail .state').textContent === 'running'",
    )
    .await;
    b.screenshot("owner-9-restored-from-deleted-containers-backup").await;

    // 8. a viewer, also without naming the namespace, is offered no action it cannot take
    b.goto(&format!("{base}/ui/containers?ns={ns}")).await;
    b.click_and_wait("form.signout button", &format!("{base}/ui/login"))
        .await;
    b.fill(&[("token", viewer.as_str()), ("namespace", "")]).await;
    b.click_and_wait("#login button", &format!("{base}/ui/containers"))
        .await;
    b.wait(
        "the viewer's table",
        &format!("document.getElementById('ct-{ns}-app-again')"),
    )
    .await;
    b.wait(
        "live updates",
        "document.getElementById('containers').dataset.live === 'synced'",
    )
    .await;
    assert_eq!(
        b.eval("document.querySelectorAll('#containers tbody button').length")
            .await,
        0
    );
    assert!(
        b.eval("document.getElementById('not-offered').textContent.includes('patch lxccontainers')")
            .await
            == true
    );
    b.screenshot("viewer-1-containers-without-actions").await;
    b.goto(&format!("{base}/ui/containers/{ns}/app-again")).await;
    let actions = b
        .eval("[...document.querySelectorAll('main button:not(.sort), main a.button')].map(e => e.textContent)")
        .await;
    assert_eq!(
        actions,
        json!([]),
        "no Stop, Back up now, Delete or Restore for a viewer"
    );
    b.screenshot("viewer-2-detail-without-actions").await;
    let violations = b.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");
}
