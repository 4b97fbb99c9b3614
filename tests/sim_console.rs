//! The simulator's consoles (`termproxy` + `vncwebsocket`, termproxy's framing) and the
//! fixture application whose stdout the console of an application container carries, driven
//! through the operator's own client.

mod sim_util;

use std::time::Duration;

use proxmox_lxc_operator::pve::{self, Auth, ClientConfig, ConsoleError, TlsMode};
use proxmox_lxc_operator::sim::{start, SimConfig, SimHandle, TokenConfig};
use sim_util::{client, Client};

fn pve_client(sim: &SimHandle, token: Option<(&str, &str)>) -> pve::Client {
    let t = &sim.tokens()[0];
    let (id, secret) = token.unwrap_or((&t.id, &t.secret));
    let mut cfg = ClientConfig::new(
        vec![sim.base_url()],
        Auth::Token {
            token_id: id.to_string(),
            secret: secret.to_string(),
        },
    );
    cfg.tls = TlsMode::Fingerprint(sim.fingerprint().to_string());
    pve::Client::new(cfg).unwrap()
}

/// CT `vmid` from the counter image, printing every `interval_ms` and exiting after `lines`
/// (0: never), started.
async fn counter(c: &Client, vmid: u32, interval_ms: u64, lines: u64) {
    let r = c
        .post(
            "/nodes/pve1/storage/local/oci-registry-pull",
            &[("reference", "ghcr.io/example/counter:1.0")],
        )
        .await;
    if r.status == 200 {
        c.ok_task(r).await;
    }
    let vmid_s = vmid.to_string();
    let r = c
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", vmid_s.as_str()),
                ("ostemplate", "local:vztmpl/counter_1.0.tar"),
                ("rootfs", "local-lvm:1"),
            ],
        )
        .await;
    c.ok_task(r).await;
    let env = format!("PATH=/bin\0COUNTER_INTERVAL_MS={interval_ms}\0COUNTER_LINES={lines}");
    let r = c
        .put(&format!("/nodes/pve1/lxc/{vmid}/config"), &[("env", env.as_str())])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.ok_task(c.post(&format!("/nodes/pve1/lxc/{vmid}/status/start"), &[]).await)
        .await;
}

/// Output until `want` is in it (or 10 s).
async fn read_until(con: &mut pve::Console, want: &str) -> String {
    let mut got = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !got.contains(want) {
            match con.next_output().await {
                Ok(Some(b)) => got.push_str(&String::from_utf8_lossy(&b)),
                _ => break,
            }
        }
    })
    .await;
    got
}

#[tokio::test]
async fn the_console_of_an_application_container_carries_what_its_entrypoint_prints() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    counter(&c, 300, 100, 0).await;
    let api = pve_client(&sim, None);
    let proxy = api.termproxy("pve1", 300).await.unwrap();
    assert_eq!(proxy.user, sim.tokens()[0].id);
    assert!((5900..=5999).contains(&proxy.port), "{proxy:?}");
    assert!(proxy.upid.contains(":vncproxy:300:"), "{}", proxy.upid);
    let mut con = api.open_console("pve1", 300, &proxy).await.unwrap();
    let out = read_until(&mut con, "\r\n").await;
    let line = out.lines().next().unwrap();
    assert!(line.starts_with("counter pid "), "{out:?}");
    assert!(out.contains("\r\n"), "a terminal ends lines with CR LF: {out:?}");
    // the vncproxy task runs while the console is open
    let task = c
        .get(&format!("/nodes/pve1/tasks/{}/status", sim_util::enc(&proxy.upid)))
        .await;
    assert_eq!(task.data()["status"], "running", "{}", task.text);
    con.close().await;
}

#[tokio::test]
async fn input_is_echoed_resize_is_applied_and_ping_keeps_the_connection() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    counter(&c, 301, 60_000, 0).await;
    let api = pve_client(&sim, None);
    let mut con = api.console("pve1", 301).await.unwrap();
    con.resize(132, 43).await.unwrap();
    con.ping().await.unwrap();
    con.send_input("héllo\n".as_bytes()).await.unwrap();
    let out = read_until(&mut con, "héllo\n").await;
    assert_eq!(out, "héllo\n");
    assert_eq!(sim.console_size(301), Some((132, 43)));
    con.ping().await.unwrap();
    con.send_input(b"x").await.unwrap();
    assert_eq!(read_until(&mut con, "x").await, "x");
}

#[tokio::test]
async fn the_console_is_live_only_and_ends_when_the_app_exits() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    counter(&c, 302, 150, 8).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api = pve_client(&sim, None);
    let mut con = api.console("pve1", 302).await.unwrap();
    let mut out = String::new();
    while let Ok(Some(b)) = con.next_output().await {
        out.push_str(&String::from_utf8_lossy(&b));
    }
    let numbers: Vec<u64> = out
        .lines()
        .filter_map(|l| l.trim_end().rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        numbers.first().is_some_and(|n| *n >= 3),
        "lines printed before attaching are gone: {out:?}"
    );
    assert_eq!(numbers.last(), Some(&8), "the last line comes before the end: {out:?}");
    assert_eq!(sim.container(302).unwrap().status, "stopped", "the app exited");
}

#[tokio::test]
async fn stopping_the_container_ends_its_console() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    counter(&c, 303, 100, 0).await;
    let api = pve_client(&sim, None);
    let mut con = api.console("pve1", 303).await.unwrap();
    read_until(&mut con, "line").await;
    c.ok_task(c.post("/nodes/pve1/lxc/303/status/stop", &[]).await).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(None) | Err(_) = con.next_output().await {
                return;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the console closes when the container stops");
}

#[tokio::test]
async fn a_wrong_ticket_is_refused_at_the_websocket_and_at_termproxy() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let c = client(&sim);
    counter(&c, 304, 100, 0).await;
    c.create_ct("pve1", 305, &[]).await;
    let api = pve_client(&sim, None);
    let proxy = api.termproxy("pve1", 304).await.unwrap();
    // pveproxy checks the vncticket for the caller and the container's path
    let mut forged = proxy.clone();
    forged.ticket = format!("{}x", proxy.ticket);
    let e = api.open_console("pve1", 304, &forged).await.unwrap_err();
    assert!(matches!(e, ConsoleError::Upgrade { .. }), "{e}");
    let e = api.open_console("pve1", 305, &proxy).await.unwrap_err();
    assert!(
        matches!(e, ConsoleError::Upgrade { .. }),
        "another container's ticket: {e}"
    );
    // termproxy checks the `user:ticket` line: the ticket is not another user's
    let proxy = api.termproxy("pve1", 304).await.unwrap();
    let mut other_user = proxy.clone();
    other_user.user = "root@pam".into();
    let e = api.open_console("pve1", 304, &other_user).await.unwrap_err();
    assert!(matches!(e, ConsoleError::Refused { vmid: 304 }), "{e}");
    // over the plain API the check gives Proxmox's text
    let r = c
        .get("/nodes/pve1/lxc/304/vncwebsocket?port=5900&vncticket=PVEVNC:00000000::AAAA")
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.body["message"], "permission denied - invalid vnc ticket\n");
}

#[tokio::test]
async fn the_console_needs_vm_console_on_the_container() {
    let mut cfg = SimConfig::fast();
    cfg.tokens.push(TokenConfig {
        id: "ops@pve!audit".into(),
        secret: "s3cret".into(),
        privileges: Some(vec!["VM.Audit".into(), "Sys.Audit".into()]),
    });
    let sim = start(cfg).await.unwrap();
    let c = client(&sim);
    counter(&c, 306, 100, 0).await;
    let api = pve_client(&sim, Some(("ops@pve!audit", "s3cret")));
    let e = api.console("pve1", 306).await.unwrap_err();
    match &e {
        ConsoleError::TermProxy { vmid: 306, source } => {
            assert!(
                source
                    .to_string()
                    .contains("Permission check failed (/vms/306, VM.Console)"),
                "{e}"
            )
        }
        other => panic!("{other}"),
    }
    let mut c2 = client(&sim);
    c2.auth = Some("PVEAPIToken=ops@pve!audit=s3cret".into());
    let r = c2.get("/nodes/pve1/lxc/306/vncwebsocket?port=5900&vncticket=x").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["message"], "Permission check failed (/vms/306, VM.Console)\n");
}
