//! Typed operations on [`Client`].
//!
//! Calls that start a worker task return its [`Upid`]; use [`Client::wait_task`] to wait
//! for the outcome. They do not take a per-node task slot themselves: take one with
//! [`Client::acquire_task_slot`] before the call and drop it when the task has finished.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::client::{encode_segment as seg, Client};
use super::error::{Error, Result};
use super::types::*;
use super::upid::{TaskLogLine, TaskResult, TaskStatus, Upid};

/// Form/query parameters with Proxmox encodings (booleans as `0`/`1`).
///
/// `Debug` prints the keys only with the values of secrets (`password`, ...) redacted.
#[derive(Default, Clone)]
pub(crate) struct Params(Vec<(String, String)>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |k: &str| k.contains("password") || k.contains("secret") || k.contains("ticket") || k == "env";
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, if secret(k) { "<redacted>" } else { v.as_str() })),
            )
            .finish()
    }
}

impl Params {
    pub(crate) fn new() -> Self {
        Params(Vec::new())
    }
    pub(crate) fn set(&mut self, k: &str, v: impl ToString) -> &mut Self {
        self.0.push((k.to_string(), v.to_string()));
        self
    }
    pub(crate) fn opt<T: ToString>(&mut self, k: &str, v: Option<T>) -> &mut Self {
        if let Some(v) = v {
            self.set(k, v);
        }
        self
    }
    pub(crate) fn opt_str(&mut self, k: &str, v: &Option<String>) -> &mut Self {
        self.opt(k, v.as_deref())
    }
    pub(crate) fn flag(&mut self, k: &str, v: Option<bool>) -> &mut Self {
        self.opt(k, v.map(|b| if b { "1" } else { "0" }))
    }
    pub(crate) fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }
}

fn lxc_path(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/lxc/{vmid}", seg(node))
}

fn parse_upid(method: &str, path: &str, v: Value) -> Result<Upid> {
    match v {
        Value::String(s) => s.parse().map_err(|_| Error::Decode {
            method: method.into(),
            path: path.into(),
            message: format!("expected a UPID, got {s:?}"),
        }),
        other => Err(Error::Decode {
            method: method.into(),
            path: path.into(),
            message: format!("expected a UPID, got {other}"),
        }),
    }
}

impl Client {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, p: &Params) -> Result<T> {
        self.request(Method::GET, path, p.as_slice()).await
    }

    async fn task_call(&self, method: Method, path: &str, p: &Params) -> Result<Upid> {
        let m = method.as_str().to_string();
        let v: Value = self.request(method, path, p.as_slice()).await?;
        parse_upid(&m, path, v)
    }

    async fn unit_call(&self, method: Method, path: &str, p: &Params) -> Result<()> {
        let _: Value = self.request(method, path, p.as_slice()).await?;
        Ok(())
    }

    // ----- cluster, nodes -----

    /// `GET /version`.
    pub async fn version(&self) -> Result<VersionInfo> {
        self.get("/version", &Params::new()).await
    }

    /// `GET /access/permissions`: the caller's effective privileges, as a map of ACL path to
    /// privilege to whether it propagates to the paths below.
    pub async fn permissions(&self) -> Result<Permissions> {
        self.get("/access/permissions", &Params::new()).await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.get("/nodes", &Params::new()).await
    }

    /// `GET /nodes/{node}/status`.
    pub async fn node_status(&self, node: &str) -> Result<NodeStatus> {
        self.get(&format!("/nodes/{}/status", seg(node)), &Params::new()).await
    }

    /// `GET /cluster/resources[?type=vm|storage|node|sdn]`.
    pub async fn cluster_resources(&self, resource_type: Option<&str>) -> Result<Vec<ClusterResource>> {
        self.cluster_resources_as(resource_type).await
    }

    /// `GET /cluster/resources[?type=...]` decoded into `T`, e.g. a type whose `Deserialize`
    /// takes one [`ClusterResource`] at a time instead of holding them all.
    pub async fn cluster_resources_as<T: serde::de::DeserializeOwned>(&self, resource_type: Option<&str>) -> Result<T> {
        let mut p = Params::new();
        p.opt("type", resource_type);
        self.get("/cluster/resources", &p).await
    }

    /// `GET /cluster/nextid`: the next free id; with `probe`, checks that this id is free
    /// (returns it) or fails with [`Error::AlreadyExists`]. Not a reservation.
    pub async fn next_id(&self, probe: Option<u32>) -> Result<u32> {
        let mut p = Params::new();
        p.opt("vmid", probe);
        let v: Value = self.get("/cluster/nextid", &p).await?;
        super::de::value_to_u64(&v)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::Decode {
                method: "GET".into(),
                path: "/cluster/nextid".into(),
                message: format!("expected an id, got {v}"),
            })
    }

    // ----- storage -----

    /// `GET /nodes/{node}/storage[?content=...]`.
    pub async fn storages(&self, node: &str, content: Option<&str>) -> Result<Vec<StorageInfo>> {
        let mut p = Params::new();
        p.opt("content", content);
        self.get(&format!("/nodes/{}/storage", seg(node)), &p).await
    }

    /// `GET /nodes/{node}/network?type=any_bridge`: the names of the node's bridges (Linux
    /// and OVS), sorted.
    pub async fn node_bridges(&self, node: &str) -> Result<Vec<String>> {
        let mut p = Params::new();
        p.set("type", "any_bridge");
        let list: Vec<Value> = self.get(&format!("/nodes/{}/network", seg(node)), &p).await?;
        let mut names: Vec<String> = list
            .iter()
            .filter_map(|i| i.get("iface").and_then(Value::as_str).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=...&vmid=...]`.
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
        vmid: Option<u32>,
    ) -> Result<Vec<StorageVolume>> {
        let mut p = Params::new();
        p.opt("content", content).opt("vmid", vmid);
        self.get(&format!("/nodes/{}/storage/{}/content", seg(node), seg(storage)), &p)
            .await
    }

    /// `POST /nodes/{node}/storage/{storage}/download-url` (task).
    pub async fn download_url(&self, node: &str, storage: &str, params: &DownloadUrlParams) -> Result<Upid> {
        let mut p = Params::new();
        p.set("url", &params.url)
            .set("content", &params.content)
            .set("filename", &params.filename)
            .opt_str("checksum", &params.checksum)
            .opt_str("checksum-algorithm", &params.checksum_algorithm)
            .flag("verify-certificates", params.verify_certificates)
            .opt_str("compression", &params.compression);
        self.task_call(
            Method::POST,
            &format!("/nodes/{}/storage/{}/download-url", seg(node), seg(storage)),
            &p,
        )
        .await
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}`; returns a task id when
    /// Proxmox deletes in the background, `None` when it finished synchronously.
    pub async fn delete_volume(&self, node: &str, storage: &str, volume: &str) -> Result<Option<Upid>> {
        let path = format!("/nodes/{}/storage/{}/content/{}", seg(node), seg(storage), seg(volume));
        let v: Value = self.request(Method::DELETE, &path, &[]).await?;
        match v {
            Value::Null => Ok(None),
            other => parse_upid("DELETE", &path, other).map(Some),
        }
    }

    /// `PUT /nodes/{node}/storage/{storage}/content/{volume}` with `protected`: protects a
    /// backup archive from deletion and pruning, or lifts that (synchronous).
    pub async fn set_volume_protected(&self, node: &str, storage: &str, volume: &str, protected: bool) -> Result<()> {
        let path = format!("/nodes/{}/storage/{}/content/{}", seg(node), seg(storage), seg(volume));
        let mut p = Params::new();
        p.set("protected", if protected { "1" } else { "0" });
        self.unit_call(Method::PUT, &path, &p).await
    }

    /// `GET /nodes/{node}/aplinfo`: the appliance/template catalogue.
    pub async fn aplinfo(&self, node: &str) -> Result<Vec<AplInfo>> {
        self.get(&format!("/nodes/{}/aplinfo", seg(node)), &Params::new()).await
    }

    /// `POST /nodes/{node}/aplinfo`: download catalogue `template` to `storage` (task).
    pub async fn aplinfo_download(&self, node: &str, storage: &str, template: &str) -> Result<Upid> {
        let mut p = Params::new();
        p.set("storage", storage).set("template", template);
        self.task_call(Method::POST, &format!("/nodes/{}/aplinfo", seg(node)), &p)
            .await
    }

    /// `POST /nodes/{node}/storage/{storage}/oci-registry-pull`: pull an OCI image into a
    /// file-based storage as `<filename>.tar` (task `ociregistrypull`; Proxmox normalizes the
    /// file name and refuses to overwrite an existing file). Needs `Datastore.AllocateTemplate`
    /// on the storage and `Sys.AccessNetwork` on the node.
    pub async fn oci_registry_pull(&self, node: &str, storage: &str, params: &OciPullParams) -> Result<Upid> {
        let mut p = Params::new();
        p.set("reference", &params.reference)
            .opt_str("filename", &params.filename);
        self.task_call(
            Method::POST,
            &format!("/nodes/{}/storage/{}/oci-registry-pull", seg(node), seg(storage)),
            &p,
        )
        .await
    }

    /// `GET /nodes/{node}/query-oci-repo-tags?reference=<repository without tag>`: the tags of
    /// a repository (`skopeo list-tags` on the node; needs `Sys.AccessNetwork`).
    pub async fn query_oci_repo_tags(&self, node: &str, repository: &str) -> Result<Vec<String>> {
        let mut p = Params::new();
        p.set("reference", repository);
        self.get(&format!("/nodes/{}/query-oci-repo-tags", seg(node)), &p).await
    }

    // ----- LXC -----

    /// `GET /nodes/{node}/lxc`.
    pub async fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>> {
        self.get(&format!("/nodes/{}/lxc", seg(node)), &Params::new()).await
    }

    /// `POST /nodes/{node}/lxc`: create (worker `vzcreate`) or restore (`vzrestore`).
    pub async fn lxc_create(&self, node: &str, params: &LxcCreateParams) -> Result<Upid> {
        let mut p = Params::new();
        p.set("vmid", params.vmid)
            .set("ostemplate", &params.ostemplate)
            .opt_str("hostname", &params.hostname)
            .opt_str("storage", &params.storage)
            .opt_str("rootfs", &params.rootfs);
        for (i, v) in &params.mount_points {
            p.set(&format!("mp{i}"), v);
        }
        for (i, v) in &params.networks {
            p.set(&format!("net{i}"), v);
        }
        p.opt("memory", params.memory)
            .opt("swap", params.swap)
            .opt("cores", params.cores)
            .opt("cpulimit", params.cpulimit)
            .opt("cpuunits", params.cpuunits)
            .opt_str("password", &params.password)
            .opt_str("ssh-public-keys", &params.ssh_public_keys)
            .flag("unprivileged", params.unprivileged)
            .opt_str("features", &params.features)
            .opt_str("pool", &params.pool)
            .opt_str("tags", &params.tags)
            .opt_str("description", &params.description)
            .flag("start", params.start)
            .flag("onboot", params.onboot)
            .opt_str("startup", &params.startup)
            .opt_str("nameserver", &params.nameserver)
            .opt_str("searchdomain", &params.searchdomain)
            .opt_str("ostype", &params.ostype)
            .opt_str("arch", &params.arch)
            .opt_str("timezone", &params.timezone)
            .flag("protection", params.protection);
        if params.restore {
            p.set("restore", 1);
        }
        p.flag("force", params.force).flag("unique", params.unique);
        for (k, v) in &params.extra {
            p.set(k, v);
        }
        self.task_call(Method::POST, &format!("/nodes/{}/lxc", seg(node)), &p)
            .await
    }

    /// `GET …/lxc/{vmid}/config` (pending changes merged, plus `digest`).
    pub async fn lxc_config(&self, node: &str, vmid: u32) -> Result<LxcConfig> {
        self.get(&format!("{}/config", lxc_path(node, vmid)), &Params::new())
            .await
    }

    /// `PUT …/lxc/{vmid}/config` (synchronous). With `digest`, fails with
    /// [`Error::DigestMismatch`] if the config changed since it was read.
    pub async fn lxc_update_config(&self, node: &str, vmid: u32, update: &ConfigUpdate) -> Result<()> {
        let mut p = Params::new();
        for (k, v) in &update.set {
            p.set(k, v);
        }
        if !update.delete.is_empty() {
            p.set("delete", update.delete.join(","));
        }
        p.opt_str("digest", &update.digest);
        self.unit_call(Method::PUT, &format!("{}/config", lxc_path(node, vmid)), &p)
            .await
    }

    /// `GET …/lxc/{vmid}/pending`.
    pub async fn lxc_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>> {
        self.get(&format!("{}/pending", lxc_path(node, vmid)), &Params::new())
            .await
    }

    /// `GET …/lxc/{vmid}/status/current`.
    pub async fn lxc_status(&self, node: &str, vmid: u32) -> Result<LxcStatus> {
        self.get(&format!("{}/status/current", lxc_path(node, vmid)), &Params::new())
            .await
    }

    /// `POST …/status/start` (task `vzstart`).
    pub async fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.task_call(
            Method::POST,
            &format!("{}/status/start", lxc_path(node, vmid)),
            &Params::new(),
        )
        .await
    }

    /// `POST …/status/stop` (task `vzstop`): hard stop.
    pub async fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.task_call(
            Method::POST,
            &format!("{}/status/stop", lxc_path(node, vmid)),
            &Params::new(),
        )
        .await
    }

    /// `POST …/status/shutdown` (task `vzshutdown`); `timeout` seconds (Proxmox default 60),
    /// `force_stop` stops the container if the shutdown times out.
    pub async fn lxc_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
        force_stop: Option<bool>,
    ) -> Result<Upid> {
        let mut p = Params::new();
        p.opt("timeout", timeout).flag("forceStop", force_stop);
        self.task_call(Method::POST, &format!("{}/status/shutdown", lxc_path(node, vmid)), &p)
            .await
    }

    /// `POST …/status/reboot` (task `vzreboot`).
    pub async fn lxc_reboot(&self, node: &str, vmid: u32, timeout: Option<u32>) -> Result<Upid> {
        let mut p = Params::new();
        p.opt("timeout", timeout);
        self.task_call(Method::POST, &format!("{}/status/reboot", lxc_path(node, vmid)), &p)
            .await
    }

    /// `PUT …/resize` (task `resize`): `disk` = `rootfs` or `mpN`, `size` = `[+]N[KMGT]`
    /// (grow only).
    pub async fn lxc_resize(&self, node: &str, vmid: u32, disk: &str, size: &str) -> Result<Upid> {
        let mut p = Params::new();
        p.set("disk", disk).set("size", size);
        self.task_call(Method::PUT, &format!("{}/resize", lxc_path(node, vmid)), &p)
            .await
    }

    /// `POST …/migrate` (task `vzmigrate`).
    pub async fn lxc_migrate(&self, node: &str, vmid: u32, params: &MigrateParams) -> Result<Upid> {
        let mut p = Params::new();
        p.set("target", &params.target)
            .flag("restart", params.restart)
            .flag("online", params.online)
            .opt_str("target-storage", &params.target_storage)
            .opt("timeout", params.timeout)
            .opt("bwlimit", params.bwlimit);
        self.task_call(Method::POST, &format!("{}/migrate", lxc_path(node, vmid)), &p)
            .await
    }

    /// `POST …/clone` (task `vzclone`; the UPID's id is the *source* vmid).
    pub async fn lxc_clone(&self, node: &str, vmid: u32, params: &CloneParams) -> Result<Upid> {
        let mut p = Params::new();
        p.set("newid", params.newid)
            .flag("full", params.full)
            .opt_str("target", &params.target)
            .opt_str("storage", &params.storage)
            .opt_str("hostname", &params.hostname)
            .opt_str("pool", &params.pool)
            .opt_str("description", &params.description)
            .opt_str("snapname", &params.snapname)
            .opt("bwlimit", params.bwlimit);
        self.task_call(Method::POST, &format!("{}/clone", lxc_path(node, vmid)), &p)
            .await
    }

    /// `POST …/template`. Proxmox forks a `vztemplate` worker but returns `null`, so there
    /// is no task id: poll the config for `template: 1`.
    pub async fn lxc_template(&self, node: &str, vmid: u32) -> Result<()> {
        self.unit_call(
            Method::POST,
            &format!("{}/template", lxc_path(node, vmid)),
            &Params::new(),
        )
        .await
    }

    /// `DELETE /nodes/{node}/lxc/{vmid}` (task `vzdestroy`).
    pub async fn lxc_delete(&self, node: &str, vmid: u32, params: &DeleteParams) -> Result<Upid> {
        let mut p = Params::new();
        p.flag("purge", params.purge)
            .flag("force", params.force)
            .flag("destroy-unreferenced-disks", params.destroy_unreferenced_disks);
        self.task_call(Method::DELETE, &lxc_path(node, vmid), &p).await
    }

    /// `GET …/interfaces`: addresses seen inside the container; empty when stopped.
    pub async fn lxc_interfaces(&self, node: &str, vmid: u32) -> Result<Vec<Interface>> {
        let v: Option<Vec<Interface>> = self
            .get(&format!("{}/interfaces", lxc_path(node, vmid)), &Params::new())
            .await?;
        Ok(v.unwrap_or_default())
    }

    /// `GET …/snapshot` (includes the pseudo-entry `current`).
    pub async fn lxc_snapshots(&self, node: &str, vmid: u32) -> Result<Vec<Snapshot>> {
        self.get(&format!("{}/snapshot", lxc_path(node, vmid)), &Params::new())
            .await
    }

    /// `POST …/snapshot` (task `vzsnapshot`).
    pub async fn lxc_snapshot_create(
        &self,
        node: &str,
        vmid: u32,
        snapname: &str,
        description: Option<&str>,
    ) -> Result<Upid> {
        let mut p = Params::new();
        p.set("snapname", snapname).opt("description", description);
        self.task_call(Method::POST, &format!("{}/snapshot", lxc_path(node, vmid)), &p)
            .await
    }

    /// `DELETE …/snapshot/{snapname}` (task `vzdelsnapshot`).
    pub async fn lxc_snapshot_delete(
        &self,
        node: &str,
        vmid: u32,
        snapname: &str,
        force: Option<bool>,
    ) -> Result<Upid> {
        let mut p = Params::new();
        p.flag("force", force);
        self.task_call(
            Method::DELETE,
            &format!("{}/snapshot/{}", lxc_path(node, vmid), seg(snapname)),
            &p,
        )
        .await
    }

    /// `POST …/snapshot/{snapname}/rollback` (task `vzrollback`).
    pub async fn lxc_snapshot_rollback(
        &self,
        node: &str,
        vmid: u32,
        snapname: &str,
        start: Option<bool>,
    ) -> Result<Upid> {
        let mut p = Params::new();
        p.flag("start", start);
        self.task_call(
            Method::POST,
            &format!("{}/snapshot/{}/rollback", lxc_path(node, vmid), seg(snapname)),
            &p,
        )
        .await
    }

    // ----- firewall -----

    /// `GET …/firewall/options`.
    pub async fn lxc_firewall_options(&self, node: &str, vmid: u32) -> Result<FirewallOptions> {
        self.get(&format!("{}/firewall/options", lxc_path(node, vmid)), &Params::new())
            .await
    }

    /// `PUT …/firewall/options`.
    pub async fn lxc_set_firewall_options(&self, node: &str, vmid: u32, o: &FirewallOptionsUpdate) -> Result<()> {
        let mut p = Params::new();
        p.flag("enable", o.enable)
            .flag("dhcp", o.dhcp)
            .flag("ipfilter", o.ipfilter)
            .flag("macfilter", o.macfilter)
            .flag("ndp", o.ndp)
            .flag("radv", o.radv)
            .opt_str("log_level_in", &o.log_level_in)
            .opt_str("log_level_out", &o.log_level_out)
            .opt_str("policy_in", &o.policy_in)
            .opt_str("policy_out", &o.policy_out)
            .opt_str("digest", &o.digest);
        if !o.delete.is_empty() {
            p.set("delete", o.delete.join(","));
        }
        self.unit_call(Method::PUT, &format!("{}/firewall/options", lxc_path(node, vmid)), &p)
            .await
    }

    /// `GET …/firewall/rules`.
    pub async fn lxc_firewall_rules(&self, node: &str, vmid: u32) -> Result<Vec<FirewallRule>> {
        self.get(&format!("{}/firewall/rules", lxc_path(node, vmid)), &Params::new())
            .await
    }

    fn rule_params(r: &FirewallRuleParams, create: bool) -> Params {
        let mut p = Params::new();
        p.opt_str("type", &r.rule_type)
            .opt_str("action", &r.action)
            .flag("enable", r.enable)
            .opt_str("source", &r.source)
            .opt_str("dest", &r.dest)
            .opt_str("proto", &r.proto)
            .opt_str("dport", &r.dport)
            .opt_str("sport", &r.sport)
            .opt_str("iface", &r.iface)
            .opt_str("macro", &r.macro_name)
            .opt_str("comment", &r.comment)
            .opt_str("log", &r.log)
            .opt_str("icmp-type", &r.icmp_type)
            .opt_str("digest", &r.digest);
        if create {
            p.opt("pos", r.pos);
        } else {
            p.opt("moveto", r.moveto);
            if !r.delete.is_empty() {
                p.set("delete", r.delete.join(","));
            }
        }
        p
    }

    /// `POST …/firewall/rules`.
    pub async fn lxc_firewall_rule_create(&self, node: &str, vmid: u32, rule: &FirewallRuleParams) -> Result<()> {
        self.unit_call(
            Method::POST,
            &format!("{}/firewall/rules", lxc_path(node, vmid)),
            &Self::rule_params(rule, true),
        )
        .await
    }

    /// `PUT …/firewall/rules/{pos}`.
    pub async fn lxc_firewall_rule_update(
        &self,
        node: &str,
        vmid: u32,
        pos: u32,
        rule: &FirewallRuleParams,
    ) -> Result<()> {
        self.unit_call(
            Method::PUT,
            &format!("{}/firewall/rules/{pos}", lxc_path(node, vmid)),
            &Self::rule_params(rule, false),
        )
        .await
    }

    /// `DELETE …/firewall/rules/{pos}`.
    pub async fn lxc_firewall_rule_delete(&self, node: &str, vmid: u32, pos: u32, digest: Option<&str>) -> Result<()> {
        let mut p = Params::new();
        p.opt("digest", digest);
        self.unit_call(
            Method::DELETE,
            &format!("{}/firewall/rules/{pos}", lxc_path(node, vmid)),
            &p,
        )
        .await
    }

    // ----- backups -----

    /// `POST /nodes/{node}/vzdump`: a task, or [`VzdumpResult::NothingToDo`] when Proxmox
    /// answers `"OK"` because none of the guests is on this node.
    pub async fn vzdump(&self, node: &str, params: &VzdumpParams) -> Result<VzdumpResult> {
        let mut p = Params::new();
        if !params.vmid.is_empty() {
            let ids: Vec<String> = params.vmid.iter().map(|v| v.to_string()).collect();
            p.set("vmid", ids.join(","));
        }
        p.flag("all", params.all)
            .opt_str("storage", &params.storage)
            .opt_str("mode", &params.mode)
            .opt_str("compress", &params.compress)
            .opt_str("notes-template", &params.notes_template)
            .flag("remove", params.remove)
            .flag("protected", params.protected)
            .opt_str("fleecing", &params.fleecing)
            .opt_str("pbs-change-detection-mode", &params.pbs_change_detection_mode)
            .opt_str("prune-backups", &params.prune_backups)
            .opt("bwlimit", params.bwlimit)
            .opt("lockwait", params.lockwait)
            .opt("stopwait", params.stopwait);
        for (k, v) in &params.extra {
            p.set(k, v);
        }
        let path = format!("/nodes/{}/vzdump", seg(node));
        let v: Value = self.request(Method::POST, &path, p.as_slice()).await?;
        match v {
            Value::String(s) if s.trim() == "OK" => Ok(VzdumpResult::NothingToDo),
            other => parse_upid("POST", &path, other).map(VzdumpResult::Task),
        }
    }

    // ----- tasks -----

    /// `GET /nodes/{node}/tasks?vmid=&limit=`: the node's tasks of guest `vmid`, newest first
    /// (finished ones included).
    pub async fn guest_tasks(&self, node: &str, vmid: u32, limit: u64) -> Result<Vec<TaskStatus>> {
        let mut p = Params::new();
        p.set("vmid", vmid).set("limit", limit).set("source", "all");
        self.get(&format!("/nodes/{}/tasks", seg(node)), &p).await
    }

    /// `GET /nodes/{node}/tasks/{upid}/status` (node taken from the UPID).
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        self.get(
            &format!("/nodes/{}/tasks/{}/status", seg(upid.node()), seg(upid.as_str())),
            &Params::new(),
        )
        .await
    }

    /// `DELETE /nodes/{node}/tasks/{upid}`: stops a running task (node taken from the UPID).
    pub async fn stop_task(&self, upid: &Upid) -> Result<()> {
        let path = format!("/nodes/{}/tasks/{}", seg(upid.node()), seg(upid.as_str()));
        let _: Value = self.request(Method::DELETE, &path, &[]).await?;
        Ok(())
    }

    /// `GET /nodes/{node}/tasks/{upid}/log?start=&limit=`; returns the lines and the
    /// total line count.
    pub async fn task_log(&self, upid: &Upid, start: u64, limit: u64) -> Result<(Vec<TaskLogLine>, u64)> {
        let path = format!("/nodes/{}/tasks/{}/log", seg(upid.node()), seg(upid.as_str()));
        let mut p = Params::new();
        p.set("start", start).set("limit", limit);
        let mut env = self.request_envelope(Method::GET, &path, p.as_slice()).await?;
        let total = env.get("total").and_then(super::de::value_to_u64);
        let data = env.get_mut("data").map(Value::take).unwrap_or(Value::Null);
        let lines: Vec<TaskLogLine> = if data.is_null() {
            Vec::new()
        } else {
            serde_json::from_value(data).map_err(|e| Error::Decode {
                method: "GET".into(),
                path: path.clone(),
                message: e.to_string(),
            })?
        };
        let total = total.unwrap_or(start + lines.len() as u64);
        Ok((lines, total))
    }

    /// The last `n` lines of a task log.
    pub async fn task_log_tail(&self, upid: &Upid, n: u64) -> Result<Vec<String>> {
        let (mut lines, total) = self.task_log(upid, 0, n).await?;
        if total > n {
            lines = self.task_log(upid, total - n, n).await?.0;
        }
        Ok(lines.into_iter().map(|l| l.t).collect())
    }

    /// Polls the task every `poll_interval` until it stops or `timeout` passes.
    ///
    /// Returns `Ok(TaskResult::Ok | TaskResult::Warnings(n))` on success,
    /// [`Error::TaskFailed`] (with the last 20 log lines) on failure, and
    /// [`Error::TaskWaitTimeout`] when the task is still running at the deadline.
    /// Transient polling errors are tolerated until the deadline.
    pub async fn wait_task(&self, upid: &Upid, poll_interval: Duration, timeout: Duration) -> Result<TaskResult> {
        let started = Instant::now();
        loop {
            match self.task_status(upid).await {
                Ok(st) => match st.result() {
                    TaskResult::Running => {}
                    TaskResult::Failed(exitstatus) => {
                        let log_tail = self.task_log_tail(upid, 20).await.unwrap_or_default();
                        return Err(Error::TaskFailed {
                            upid: upid.to_string(),
                            exitstatus,
                            log_tail,
                        });
                    }
                    ok => return Ok(ok),
                },
                Err(e) if e.is_retryable() => {
                    tracing::debug!(upid = %upid, error = %e, "task status poll failed, will retry");
                }
                Err(e) => return Err(e),
            }
            if started.elapsed() + poll_interval > timeout {
                return Err(Error::TaskWaitTimeout {
                    upid: upid.to_string(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(poll_interval).await;
        }
    }
}

#[cfg(test)]
mod params_tests {
    use super::Params;

    #[test]
    fn debug_output_of_request_parameters_never_shows_the_root_password() {
        let mut p = Params::new();
        p.set("hostname", "web").set("password", "Sup3r-Secret-Pa55word");
        let shown = format!("{p:?}");
        assert!(!shown.contains("Sup3r-Secret-Pa55word"), "{shown}");
        assert!(
            shown.contains("hostname") && shown.contains("web") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
