//! The web UI end to end, without a browser: a real kube-apiserver, the simulator and the
//! operator serving `--ui-addr`; users sign in with ServiceAccount tokens bound to Roles, so
//! the apiserver's RBAC decides what each one sees and may do.

mod common;
use common::ui::*;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn ui_shows_only_what_the_users_rbac_allows_and_a_viewer_is_refused_the_stop() {
    let cp = ControlPlane::shared();
    let (a, b) = (cp.namespace("ui-rbac-a"), cp.namespace("ui-rbac-b"));
    container(cp, &a, "web-a", "in A");
    container(cp, &b, "web-b", "in B");
    let port = free_port();
    let _op = Operator::start_with(cp, &a, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);

    let admin = UiClient::new(&base);
    admin.login(&sa_token(cp, &a, "alice", ADMIN_RULES), &a);
    let (code, page) = admin.get("/ui/containers");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("web-a") && !page.contains("web-b"), "{page}");
    for (other, says) in [
        (format!("?ns={b}"), "Kubernetes refused this for your account"),
        (
            "?ns=".to_string(),
            "may not list containers in all namespaces: enter your namespace",
        ),
    ] {
        let (code, page) = admin.get(&format!("/ui/containers{other}"));
        assert_eq!(code, 403, "{other}: {page}");
        assert!(page.contains(says), "{page}");
        assert!(!page.contains("web-b"), "{page}");
        assert!(
            !page.contains("ErrorResponse") && !page.contains("Some("),
            "no debug dump: {page}"
        );
    }
    let live = admin.get_for(&format!("/ui/events?ns={a}"), 3);
    assert!(
        live.contains("event: row") && live.contains("web-a") && live.contains("event: synced"),
        "{live}"
    );
    let refused = admin.get_for(&format!("/ui/events?ns={b}"), 10);
    assert!(
        refused.contains("event: failed") && refused.contains("403"),
        "the live stream is refused too: {refused}"
    );
    assert!(!refused.contains("web-b"));
    let (code, _) = admin.get(&format!("/ui/containers/{b}/web-b"));
    assert_eq!(code, 403, "another namespace's container page is refused");
    let (code, page) = admin.get("/ui");
    assert_eq!(
        code, 200,
        "the clusters page says a tenant cannot read the (cluster-scoped) clusters: {page}"
    );
    assert!(page.contains("cluster-scoped"), "{page}");

    let viewer = UiClient::new(&base);
    viewer.login(&sa_token(cp, &a, "bob", VIEWER_RULES), &a);
    let (code, page) = viewer.get("/ui/containers");
    assert!(code == 200 && page.contains("web-a"), "{page}");
    assert!(
        !page.contains("value=\"Stopped\"") && page.contains("patch lxccontainers"),
        "no Stop for a viewer, and why: {page}"
    );
    let csrf = viewer.csrf();
    let (code, page) = viewer.post(
        &format!("/ui/containers/{a}/web-a/state"),
        &[("csrf", &csrf), ("state", "Stopped")],
    );
    assert_eq!(code, 403, "{page}");
    assert!(
        page.contains("403 Forbidden") && page.contains("patch"),
        "a readable refusal: {page}"
    );
    assert!(
        page.contains("id=\"flash\"") && page.contains("/ui/logout") && page.contains("id=\"detail\""),
        "on the container's page, with the navigation: {page}"
    );
    let obj = get_json(cp, &a, "lxc", "web-a").unwrap();
    assert!(obj["spec"]["state"] != "Stopped", "unchanged: {}", obj["spec"]);

    let (code, _) = UiClient::new(&base).post("/ui/login", &[("token", "not-a-token")]);
    assert_eq!(code, 401, "a token the apiserver does not know is refused");
    let (code, _) = viewer.post("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!(code, 303);
    let (code, _) = viewer.get("/ui/containers");
    assert_eq!(code, 303, "signed out: sent to the sign-in page");
}

#[test]
fn actions_in_the_ui_change_the_objects_and_the_operator_follows() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-act");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let hostile = "<script>window.pwned=1</script>";
    container(cp, &ns, "web", hostile);
    cp.kubectl_ok(&[
        "patch",
        "-n",
        &ns,
        "lxc",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"ports":[{"name":"http","port":80}]}}"#,
    ]);
    let port = free_port();
    let _op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    let obj = wait_ready(cp, &ns, "lxc", "web", T);
    let vmid = obj["status"]["vmid"].as_u64().unwrap();

    let ui = UiClient::new(&base);
    ui.login(&sa_token(cp, &ns, "alice", ADMIN_RULES), &ns);
    let csrf = ui.csrf();
    let (code, page) = ui.get(&format!("/ui/containers/{ns}/web"));
    assert_eq!(code, 200, "{page}");
    assert!(
        !page.contains(hostile) && page.contains("&#60;script&#62;"),
        "escaped: {page}"
    );
    assert!(
        page.contains("Conditions") && page.contains("apiVersion: pve.lxc.dev/v1alpha1"),
        "{page}"
    );
    // usage charts from the samples the observer records (one per minute, the first at once)
    let page = wait_for("a usage chart", T, || {
        let page = ui.get(&format!("/ui/containers/{ns}/web")).1;
        page.contains("<polyline class=\"cpu\"").then_some(page)
    });
    assert!(page.contains("Memory: ") && page.contains(" of "), "{page}");
    // the Service of spec.ports: shown when the user may read it, else why not
    let (_, page) = ui.get(&format!("/ui/containers/{ns}/web"));
    assert!(
        page.contains("id=\"h-service\"") && page.contains("403 Forbidden"),
        "{page}"
    );
    cp.kubectl_ok(&[
        "create",
        "role",
        "svc-read",
        "-n",
        &ns,
        "--verb=get,list",
        "--resource=services,endpointslices.discovery.k8s.io",
    ]);
    cp.kubectl_ok(&[
        "create",
        "rolebinding",
        "svc-read",
        "-n",
        &ns,
        "--role=svc-read",
        &format!("--serviceaccount={ns}:alice"),
    ]);
    wait_for("the container's Service on its page", T, || {
        let page = ui.get(&format!("/ui/containers/{ns}/web")).1;
        (page.contains(&format!("web.{ns}.svc, cluster IP")) && page.contains("http 80/TCP")).then_some(())
    });

    // stop: spec.state, then the simulator's container
    let (code, _) = ui.post(
        &format!("/ui/containers/{ns}/web/state"),
        &[("csrf", &csrf), ("state", "Stopped"), ("back", "list")],
    );
    assert_eq!(code, 303);
    let (_, page) = ui.get(&format!("/ui/containers?ns={ns}"));
    assert!(
        page.contains(&format!("Stop requested for {ns}/web")),
        "a confirmation: {page}"
    );
    let (_, page) = ui.get(&format!("/ui/containers?ns={ns}"));
    assert!(!page.contains("Stop requested"), "shown once: {page}");
    assert_eq!(get_json(cp, &ns, "lxc", "web").unwrap()["spec"]["state"], "Stopped");
    wait_for("the simulator's container to stop", T, || {
        sim.container(vmid)
            .is_some_and(|c| c["status"] == "stopped")
            .then_some(())
    });

    // back up now: an LxcBackup that completes
    let (code, _) = ui.post(&format!("/ui/containers/{ns}/web/backup"), &[("csrf", &csrf)]);
    assert_eq!(code, 303);
    wait_for("the backup to complete", T, || {
        let page = ui.get(&format!("/ui/containers/{ns}/web")).1;
        page.contains("class=\"phase\">Completed<").then_some(())
    });

    // restore: a new container from that backup
    let (code, page) = ui.get(&format!("/ui/containers/{ns}/web"));
    let marker = "name=\"backup\" value=\"";
    let at = page.find(marker).expect("a Restore form") + marker.len();
    let backup = page[at..].split('"').next().unwrap().to_string();
    let (code2, _) = ui.post(
        &format!("/ui/containers/{ns}/web/restore"),
        &[("csrf", &csrf), ("backup", &backup), ("new_name", "web-restored")],
    );
    assert_eq!((code, code2), (200, 303));
    let restored = wait_ready(cp, &ns, "lxc", "web-restored", T);
    assert_eq!(restored["spec"]["source"]["backup"]["name"], backup.as_str());
    let (code, page) = ui.get("/ui/schedules");
    assert!(
        code == 200 && page.contains(&backup),
        "the backups page lists it: {page}"
    );
    let (code, page) = ui.get("/ui/templates");
    assert!(code == 200 && page.contains("LxcTemplates"), "{page}");

    // create (the wizard's form): a bad value is named by the apiserver once, next to its
    // field; a check shows the confirm step; a good one is created
    let form = |cores: &'static str, mode: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("namespace", ns.clone()),
            ("name", "db".to_string()),
            (
                "os_template",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".to_string(),
            ),
            ("cores", cores.to_string()),
            ("memory_mib", "512".to_string()),
            ("source", "os".to_string()),
            ("state", "Running".to_string()),
            ("mode", mode.to_string()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ui.post("/ui/new", &f)
    };
    let (code, page) = send(form("many", "create"));
    assert_eq!(code, 422, "{page}");
    assert!(
        page.contains("id=\"e-cores\"")
            && page.contains("spec.resources.cores")
            && page.matches("role=\"alert\"").count() == 1,
        "{page}"
    );
    assert!(get_json(cp, &ns, "lxc", "db").is_none(), "nothing created");
    let (code, page) = send(form("2", "check"));
    assert!(code == 200 && page.contains("dry run"), "{page}");
    assert!(get_json(cp, &ns, "lxc", "db").is_none(), "a check creates nothing");
    let (code, _) = send(form("2", "create"));
    assert_eq!(code, 303);
    wait_ready(cp, &ns, "lxc", "db", T);

    // delete: only with the name typed again; a wrong one shows the form again
    let path = format!("/ui/containers/{ns}/db/delete");
    let (code, page) = ui.post(&path, &[("csrf", &csrf), ("confirm", "web")]);
    assert_eq!(code, 400);
    assert!(
        page.contains("id=\"delete\"") && page.contains("value=\"web\"") && page.contains("nothing was deleted"),
        "the form again, with what was typed: {page}"
    );
    let (code, _) = ui.post(&path, &[("csrf", &csrf), ("confirm", "db")]);
    assert_eq!(code, 303);
    wait_for("db to go", T, || get_json(cp, &ns, "lxc", "db").is_none().then_some(()));

    // a deleted container's backup is restored from the Backups page
    cp.kubectl_ok(&["delete", "-n", &ns, "lxc", "web", "--timeout=60s"]);
    let (code, page) = ui.get(&format!("/ui/schedules?ns={ns}"));
    let form = format!("action=\"/ui/backups/{ns}/{backup}/restore\"");
    assert!(
        code == 200 && page.contains(&form),
        "a Restore form for the backup of the deleted container: {page}"
    );
    let (code, page) = ui.post(
        &format!("/ui/backups/{ns}/{backup}/restore"),
        &[("csrf", &csrf), ("new_name", "web")],
    );
    assert_eq!(code, 303, "{page}");
    let (_, page) = ui.get(&format!("/ui/containers/{ns}/web"));
    assert!(
        page.contains(&format!(
            "Restore requested: {ns}/web is being created from LxcBackup {backup}"
        )),
        "{page}"
    );
    let again = wait_ready(cp, &ns, "lxc", "web", T);
    assert_eq!(again["spec"]["source"]["backup"]["name"], backup.as_str());
    // a name already taken is refused on the Backups page, with the reason
    let (code, page) = ui.post(
        &format!("/ui/backups/{ns}/{backup}/restore"),
        &[("csrf", &csrf), ("new_name", "web")],
    );
    assert_eq!(code, 409, "{page}");
    assert!(page.contains("already exists") && page.contains(&form), "{page}");
}

#[test]
fn signing_in_without_a_namespace_lands_in_the_service_accounts_own_and_the_log_names_who() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-signin");
    container(cp, &ns, "mine", "in my namespace");
    let port = free_port();
    let op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    let ui = UiClient::new(&base);
    ui.login(&sa_token(cp, &ns, "carol", ADMIN_RULES), "");
    let (code, page) = ui.get("/ui/containers");
    assert_eq!(code, 200, "{page}");
    let who = format!("system:serviceaccount:{ns}:carol");
    assert!(
        page.contains("mine")
            && page.contains(&format!(
                "Signed in as {who}; showing namespace {ns}, your ServiceAccount"
            )),
        "{page}"
    );
    assert!(page.contains("aria-current=\"page\">Containers<"), "{page}");
    wait_for("the sign-in in the log, with the user", T, || {
        op.log()
            .lines()
            .any(|l| l.contains("web UI: a user signed in") && l.contains(&who))
            .then_some(())
    });
    // a page that fails reads as a sentence, inside the layout
    let (code, page) = ui.get(&format!("/ui/containers/{ns}/nothing-here"));
    assert_eq!(code, 404, "{page}");
    assert!(page.contains("/ui/logout") && page.contains("Not found"), "{page}");
    assert!(!page.contains("ErrorResponse") && !page.contains("Some("), "{page}");
}

#[test]
fn a_user_signing_in_again_and_again_cannot_sign_another_user_out_and_streams_and_silent_connections_are_bounded() {
    use std::io::Read;
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-abuse");
    container(cp, &ns, "web", "x");
    let port = free_port();
    let _op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    let admin = UiClient::new(&base);
    admin.login(&sa_token(cp, &ns, "admin", ADMIN_RULES), &ns);

    // more sign-ins of one user than it may hold sessions: only its own oldest end
    let flood = sa_token(cp, &ns, "flood", VIEWER_RULES);
    let first = UiClient::new(&base);
    first.login(&flood, &ns);
    for _ in 0..20 {
        UiClient::new(&base).login(&flood, &ns);
    }
    let (code, page) = admin.get("/ui/containers");
    assert_eq!(code, 200, "the admin is still signed in: {page}");
    assert_eq!(
        first.get("/ui/containers").0,
        303,
        "the flooder's own oldest session ended"
    );

    // live streams per session are bounded
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| admin.get_for(&format!("/ui/events?ns={ns}"), 8));
        }
        std::thread::sleep(Duration::from_secs(3));
        let fifth = admin.get_for(&format!("/ui/events?ns={ns}"), 3);
        assert!(
            fifth.contains("live pages open"),
            "the fifth stream is refused: {fifth}"
        );
    });

    // a connection that sends nothing is closed after the header read timeout
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = conn.read(&mut buf);
    let waited = t0.elapsed();
    eprintln!("a silent connection was closed after {waited:?} ({read:?})");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, nothing sent: {read:?}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "closed after the 10 s header read timeout, not held: {waited:?}"
    );
}

#[test]
fn snapshots_are_taken_rolled_back_and_deleted_from_a_containers_page() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ui-snap");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    container(cp, &ns, "web", "x");
    let port = free_port();
    let _op = Operator::start_with(cp, &ns, &["--ui-addr", &format!("127.0.0.1:{port}")]);
    let base = wait_ui(port);
    wait_ready(cp, &ns, "lxc", "web", T);
    let ui = UiClient::new(&base);
    ui.login(&sa_token(cp, &ns, "alice", ADMIN_RULES), &ns);
    let csrf = ui.csrf();
    let page_path = format!("/ui/containers/{ns}/web");

    let (code, page) = ui.post(
        &format!("{page_path}/snapshots"),
        &[("csrf", &csrf), ("description", "before the upgrade")],
    );
    assert_eq!(code, 303, "{page}");
    let snap = wait_for("the snapshot to be Ready on the page", T, || {
        let page = ui.get(&page_path).1;
        let marker = "<tr id=\"snap-";
        let at = page.find(marker)? + marker.len();
        let name = page[at..].split('"').next()?.to_string();
        page.contains("class=\"phase\">Ready<").then_some(name)
    });
    let obj = get_json(cp, &ns, "lxcsnapshot", &snap).unwrap();
    assert_eq!(obj["spec"]["description"], "before the upgrade");

    // roll back: only when confirmed; then one rollback request
    let rollback = format!("{page_path}/snapshots/{snap}/rollback");
    let (code, page) = ui.post(&rollback, &[("csrf", &csrf)]);
    assert_eq!(code, 400, "{page}");
    assert!(
        page.contains("Tick the box") && page.contains("id=\"snapshots\""),
        "{page}"
    );
    assert!(get_json(cp, &ns, "lxcsnapshot", &snap).unwrap()["spec"]["rollback"].is_null());
    let (code, _) = ui.post(&rollback, &[("csrf", &csrf), ("confirm", "yes")]);
    assert_eq!(code, 303);
    let (_, page) = ui.get(&page_path);
    assert!(
        page.contains(&format!("Rollback of {ns}/web to snapshot {snap} requested")),
        "{page}"
    );
    let request = get_json(cp, &ns, "lxcsnapshot", &snap).unwrap()["spec"]["rollback"]["request"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the rollback to be carried out", T, || {
        let s = get_json(cp, &ns, "lxcsnapshot", &snap)?;
        (s["status"]["rollback"]["request"] == request.as_str()).then_some(())
    });

    // delete
    let (code, _) = ui.post(
        &format!("{page_path}/snapshots/{snap}/delete"),
        &[("csrf", &csrf), ("confirm", "yes")],
    );
    assert_eq!(code, 303);
    wait_for("the snapshot to go", T, || {
        get_json(cp, &ns, "lxcsnapshot", &snap).is_none().then_some(())
    });

    // a viewer is offered none of it
    let viewer = UiClient::new(&base);
    viewer.login(&sa_token(cp, &ns, "bob", VIEWER_RULES), &ns);
    let (_, page) = viewer.get(&page_path);
    assert!(
        !page.contains("Take snapshot") && page.contains("lxcsnapshots"),
        "{page}"
    );
}
