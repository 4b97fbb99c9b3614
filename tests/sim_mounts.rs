//! Bind mounts and device passthrough in the simulator, as Proxmox VE has them: only `root@pam`
//! itself may set them (a token of root@pam is refused with Proxmox's texts), deleting a bind
//! mount needs no root and leaves no `unusedN` (it holds no volume).

mod sim_util;

use sim_util::{client, enc, fast_sim, Client};

const TMPL: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
const BIND: &str = "Permission check failed (mount point type bind is only allowed for root@pam)";
const DEVICE: &str = "Permission check failed (mount point type device is only allowed for root@pam)";
const PASSTHROUGH: &str = "Permission check failed (configuring device passthrough is only allowed for root@pam)";

/// A client signed in as root@pam with its password (ticket and CSRF token).
async fn root(sim: &proxmox_lxc_operator::sim::SimHandle) -> Client {
    let (user, pass) = sim.user_credentials().unwrap();
    let mut c = client(sim);
    c.auth = None;
    let r = c
        .post("/access/ticket", &[("username", &user), ("password", &pass)])
        .await;
    c.cookie = Some(enc(r.data()["ticket"].as_str().unwrap()));
    c.csrf = Some(r.data()["CSRFPreventionToken"].as_str().unwrap().to_string());
    c
}

#[tokio::test]
async fn only_root_at_pam_itself_sets_bind_mounts_and_devices_and_a_removed_bind_mount_leaves_no_volume() {
    let sim = fast_sim().await;
    let token = client(&sim);
    let create = [
        ("vmid", "100"),
        ("ostemplate", TMPL),
        ("rootfs", "local-lvm:2"),
        ("mp0", "/srv/media,mp=/media,ro=1"),
    ];
    for (extra, text) in [
        (("mp0", "/srv/media,mp=/media"), BIND),
        (("dev0", "/dev/dri/renderD128"), PASSTHROUGH),
    ] {
        let mut form = create[..3].to_vec();
        form.push(extra);
        let r = token.post("/nodes/pve1/lxc", &form).await;
        assert_eq!((r.status, r.reason.as_str()), (403, text), "{}", r.text);
    }
    let root = root(&sim).await;
    let mut form = create.to_vec();
    form.extend([("mp1", "/srv/cache,mp=/cache"), ("dev0", "/dev/dri/renderD128,gid=44")]);
    root.ok_task(root.post("/nodes/pve1/lxc", &form).await).await;
    let cfg = token.get("/nodes/pve1/lxc/100/config").await.data().clone();
    assert_eq!(cfg["mp0"], "/srv/media,mp=/media,ro=1");
    assert_eq!(cfg["dev0"], "/dev/dri/renderD128,gid=44");
    // a token may remove a bind mount (VM.Config.Disk), not add one, nor touch a device
    for (form, text) in [
        (vec![("mp2", "/srv/x,mp=/x")], BIND),
        (vec![("mp2", "/dev/sdb1,mp=/x")], DEVICE),
        (vec![("dev1", "/dev/ttyUSB0")], PASSTHROUGH),
        (vec![("delete", "dev0")], PASSTHROUGH),
    ] {
        let r = token.put("/nodes/pve1/lxc/100/config", &form).await;
        assert_eq!((r.status, r.reason.as_str()), (403, text), "{form:?}: {}", r.text);
    }
    assert_eq!(
        token
            .put("/nodes/pve1/lxc/100/config", &[("delete", "mp1")])
            .await
            .status,
        200
    );
    let cfg = token.get("/nodes/pve1/lxc/100/config").await.data().clone();
    assert!(cfg.get("mp1").is_none(), "{cfg}");
    let keys: Vec<&String> = cfg
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("unused"))
        .collect();
    assert!(keys.is_empty(), "a bind mount leaves no unusedN: {cfg}");
    assert_eq!(
        root.put("/nodes/pve1/lxc/100/config", &[("dev1", "/dev/ttyUSB0")])
            .await
            .status,
        200
    );
    sim.shutdown().await;
}
