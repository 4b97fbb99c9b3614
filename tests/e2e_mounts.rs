//! Bind mounts and device passthrough end to end: a real kube-apiserver, the Proxmox simulator
//! and the operator binary. Proxmox lets only `root@pam` itself set them, so the operator signs
//! in with root@pam's password where they must work, and with the tests' token (of root@pam,
//! which Proxmox refuses all the same) where the refusal is checked.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// The simulator's root@pam password (`pve-sim`'s default user).
const ROOT_PASSWORD: &str = "pve-sim-root";

struct Env {
    cp: &'static ControlPlane,
    ns: String,
    sim: Sim,
    _op: Operator,
}

/// A namespace, a simulator and an operator; signed in as root@pam itself (`root`) or with the
/// tests' API token.
fn env(prefix: &str, root: bool) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = Sim::start(&["--clock-speed", "5"]);
    if root {
        let creds = format!(r#"{{"username":"root@pam","password":"{ROOT_PASSWORD}"}}"#);
        connect_cluster_as(cp, &ns, &sim, "2s", &creds);
    } else {
        connect_cluster(cp, &ns, &sim, "2s");
    }
    let op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    Env { cp, ns, sim, _op: op }
}

fn container(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n  rootfs: {{storage: local-lvm, size: 2Gi}}\n{extra}"
    )
}

fn obj(e: &Env, name: &str) -> Value {
    get_json(e.cp, &e.ns, "lxc", name).unwrap_or(Value::Null)
}

/// Waits until `name` has Ready=False with `reason`; returns the message.
fn refused(e: &Env, name: &str, reason: &str) -> String {
    wait_for(&format!("{name}: Ready=False reason={reason}"), T, || {
        condition(&obj(e, name), "Ready").filter(|(s, r, _)| s == "False" && r == reason)
    })
    .2
}

/// The container's config in the simulator (current values, pending ones apart).
fn config(e: &Env, vmid: u64) -> Value {
    e.sim.container(vmid).expect("the container exists")["config"].clone()
}

const MOUNTS: &str = "  mountPoints: [{name: mp0, storage: local-lvm, size: 1Gi, path: /data}]\n";

#[test]
fn bind_mounts_and_devices_reach_proxmox_and_removing_them_keeps_the_volume() {
    let e = env("mounts-root", true);
    e.cp.apply(
        &e.ns,
        &container(
            "media",
            &format!("{MOUNTS}  bindMounts:\n    - {{hostPath: /srv/media, mountPath: /media, readOnly: true}}\n    - {{hostPath: /srv/cache, mountPath: /cache, mountOptions: [nosuid, nodev]}}\n  devices: [{{path: /dev/dri/renderD128, mode: \"0660\", gid: 44}}]\n"),
        ),
    );
    let o = wait_ready(e.cp, &e.ns, "lxc", "media", T);
    let vmid = o["status"]["vmid"].as_u64().unwrap();
    assert_eq!(
        o["status"]["hostMounts"],
        serde_json::json!(["dev0", "mp1", "mp2"]),
        "what the operator set"
    );
    let cfg = config(&e, vmid);
    let volume = cfg["mp0"].as_str().unwrap().to_string();
    assert!(
        volume.starts_with("local-lvm:vm-") && volume.contains("mp=/data"),
        "{cfg}"
    );
    assert_eq!(cfg["mp1"], "/srv/media,mp=/media,ro=1", "{cfg}");
    assert_eq!(cfg["mp2"], "/srv/cache,mp=/cache,mountoptions=nodev;nosuid", "{cfg}");
    let dev = cfg["dev0"].as_str().unwrap();
    assert!(
        dev.starts_with("/dev/dri/renderD128,") && dev.contains("gid=44") && dev.contains("mode=0660"),
        "{dev}"
    );
    // one bind mount and the device go; the running container applies that at its next restart
    e.cp.apply(
        &e.ns,
        &container("media", &format!("{MOUNTS}  bindMounts:\n    - {{hostPath: /srv/cache, mountPath: /cache, mountOptions: [nosuid, nodev]}}\n")),
    );
    let (_, _, msg) = wait_for("PendingRestart naming mp1 and dev0", T, || {
        condition(&obj(&e, "media"), "PendingRestart").filter(|c| c.0 == "True" && c.2.contains("mp1"))
    });
    assert!(msg.contains("dev0"), "{msg}");
    e.cp.kubectl_ok(&[
        "patch",
        "-n",
        &e.ns,
        "lxc",
        "media",
        "--type=merge",
        "-p",
        r#"{"spec":{"state":"Stopped"}}"#,
    ]);
    wait_for("the container stopped", T, || {
        (obj(&e, "media")["status"]["phase"] == "Stopped").then_some(())
    });
    let cfg = config(&e, vmid);
    assert!(cfg.get("mp1").is_none() && cfg.get("dev0").is_none(), "{cfg}");
    assert_eq!(obj(&e, "media")["status"]["hostMounts"], serde_json::json!(["mp2"]));
    assert_eq!(cfg["mp0"], volume.as_str(), "the volume is untouched");
    assert_eq!(cfg["mp2"], "/srv/cache,mp=/cache,mountoptions=nodev;nosuid", "{cfg}");
    let unused: Vec<&String> = cfg
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("unused"))
        .collect();
    assert!(unused.is_empty(), "a bind mount leaves no detached volume: {cfg}");
    let node = o["status"]["node"].as_str().unwrap();
    let content = e
        .sim
        .call("GET", &format!("/nodes/{node}/storage/local-lvm/content"), &[]);
    let disk = volume.split(',').next().unwrap();
    assert!(
        content.to_string().contains(disk),
        "the volume {disk} still exists: {content}"
    );
}

#[test]
fn a_token_cannot_set_bind_mounts_or_devices_and_the_condition_says_root_at_pam_is_needed() {
    let e = env("mounts-token", false);
    e.cp.apply(
        &e.ns,
        &container("nas", "  bindMounts: [{hostPath: /srv/nas, mountPath: /nas}]\n"),
    );
    let msg = refused(&e, "nas", "RootRequired");
    assert!(
        msg.contains("mount point type bind is only allowed for root@pam"),
        "{msg}"
    );
    assert!(
        msg.contains("even a token of root@pam") && msg.contains("username: root@pam"),
        "{msg}"
    );
    assert!(e.sim.containers().is_empty(), "nothing was made in Proxmox");
    // an existing container: the device is refused by the config update, the rest stays
    e.cp.apply(&e.ns, &container("gpu", ""));
    let vmid = wait_ready(e.cp, &e.ns, "lxc", "gpu", T)["status"]["vmid"]
        .as_u64()
        .unwrap();
    e.cp.apply(&e.ns, &container("gpu", "  devices: [{path: /dev/dri/renderD128}]\n"));
    let msg = refused(&e, "gpu", "RootRequired");
    assert!(msg.contains("device passthrough is only allowed for root@pam"), "{msg}");
    assert!(config(&e, vmid).get("dev0").is_none());
}

#[test]
fn a_tenant_without_the_privileges_gets_no_bind_mount_or_device() {
    let e = env("mounts-tenant", true);
    e.cp.apply(
        &e.ns,
        &format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxTenant\nmetadata:\n  name: {ns}\nspec:\n  clusters: [{ns}]\n  namespaces: [{ns}]\n  privileges: {{bindMounts: true, bindMountPaths: [/srv/{ns}]}}\n",
            ns = e.ns
        ),
    );
    wait_ready(e.cp, &e.ns, "proxmoxtenant", &e.ns, T);
    e.cp.apply(
        &e.ns,
        &container("outside", "  bindMounts: [{hostPath: /etc/pve, mountPath: /pve}]\n"),
    );
    let msg = refused(&e, "outside", "TenantPolicyBindMounts");
    assert!(msg.contains("spec.bindMounts[0].hostPath /etc/pve is outside"), "{msg}");
    e.cp.apply(&e.ns, &container("gpu", "  devices: [{path: /dev/dri/renderD128}]\n"));
    let msg = refused(&e, "gpu", "TenantPolicyDevices");
    assert!(msg.contains("privileges.devices"), "{msg}");
    assert!(e.sim.containers().is_empty(), "nothing reached Proxmox");
    // inside its paths, a tenant's bind mount is made
    e.cp.apply(
        &e.ns,
        &container(
            "inside",
            &format!("  bindMounts: [{{hostPath: /srv/{}/media, mountPath: /media}}]\n", e.ns),
        ),
    );
    let vmid = wait_ready(e.cp, &e.ns, "lxc", "inside", T)["status"]["vmid"]
        .as_u64()
        .unwrap();
    assert_eq!(config(&e, vmid)["mp0"], format!("/srv/{}/media,mp=/media", e.ns));
}
