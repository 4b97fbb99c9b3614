//! The tenant policy applied to what Proxmox has, not to what the spec asks: a clone keeps its
//! source's interfaces, features, mount points, devices and raw keys, and a restore brings
//! back the archive's, so the spec alone says nothing about them. [`check_config`] judges a
//! container's config as Proxmox reports it (with the pass's own changes applied, see
//! [`effective`]) before it is started; [`actual_footprint`] counts what Proxmox reports
//! against the quota when that is more than the spec says.

use super::policy::{address_allowed, path_allowed, Footprint, Refusal};
use crate::controller::kernel::Reason;
use crate::crd::proxmox_tenant::{ProxmoxTenantSpec, TenantNetwork};
use crate::pve::props::DevConfig;
use crate::pve::{LxcConfig, MountPoint, NetConfig};
use serde_json::Value;
use std::collections::BTreeMap;

/// The config Proxmox will have once `set` and `delete` (the pass's update) are applied to `cfg`.
pub fn effective(cfg: &LxcConfig, set: &BTreeMap<String, String>, delete: &[String]) -> LxcConfig {
    let mut raw = cfg.raw.clone();
    for k in delete {
        raw.remove(k);
    }
    for (k, v) in set {
        raw.insert(k.clone(), Value::String(v.clone()));
    }
    LxcConfig::from_raw(raw)
}

/// The `prefix<N>` keys of `cfg` with their values, in index order.
fn indexed<'a>(cfg: &'a LxcConfig, prefix: &'a str) -> impl Iterator<Item = (String, String)> + 'a {
    cfg.raw.iter().filter_map(move |(k, v)| {
        let n = k.strip_prefix(prefix)?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((k.clone(), crate::pve::de::value_to_string(v)?))
    })
}

/// Checks a container's config as Proxmox reports it against the tenant's limits: the
/// privilege flag, features, every interface (bridge, VLAN, trunks, static address, and the
/// firewall when the tenant forces it), bind mounts, devices, raw `lxc.*` keys and a hookscript.
/// A refusal names the config key; nothing in it comes from the spec alone.
pub fn check_config(t: &ProxmoxTenantSpec, cfg: &LxcConfig) -> Result<(), Refusal> {
    let privileges = t.privileges.clone().unwrap_or_default();
    if cfg.unprivileged != Some(true) && !privileges.privileged {
        return Err(Refusal::new(
            Reason::TenantPolicyPrivileged,
            "the container's config in Proxmox is privileged (unprivileged is not set, as its clone source or archive had it); the tenant may not run privileged containers",
        ));
    }
    check_features(cfg, privileges.extra_features)?;
    let net = t.network.clone().unwrap_or_default();
    let forced = t.network.is_none() || net.force_firewall;
    for (key, value) in indexed(cfg, "net") {
        let n = NetConfig::parse(&value).map_err(|e| unreadable(&key, &e))?;
        check_interface(&net, forced, &key, &n)?;
    }
    for (key, value) in indexed(cfg, "mp") {
        let m = MountPoint::parse_mp(&value).map_err(|e| unreadable(&key, &e))?;
        if m.volume.starts_with('/') {
            host_path(
                Reason::TenantPolicyBindMounts,
                "bindMounts",
                privileges.bind_mounts,
                &privileges.bind_mount_paths,
                &key,
                &m.volume,
            )?;
        }
    }
    for (key, value) in indexed(cfg, "dev") {
        let d = DevConfig::parse(&value).map_err(|e| unreadable(&key, &e))?;
        host_path(
            Reason::TenantPolicyDevices,
            "devices",
            privileges.devices,
            &privileges.device_paths,
            &key,
            &d.path,
        )?;
    }
    for key in ["lxc", "hookscript"] {
        if cfg
            .raw
            .get(key)
            .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]))
        {
            return Err(Refusal::new(
                Reason::TenantPolicyRawConfig,
                format!("the container's config in Proxmox has {key} (from its clone source or archive); a tenant's container may have no raw lxc keys and no hookscript"),
            ));
        }
    }
    Ok(())
}

fn unreadable(key: &str, e: &crate::pve::Error) -> Refusal {
    Refusal::new(
        Reason::TenantPolicyRawConfig,
        format!(
            "the container's {key} in Proxmox cannot be read, so it cannot be checked against the tenant's limits: {e}"
        ),
    )
}

fn check_features(cfg: &LxcConfig, allowed: bool) -> Result<(), Refusal> {
    let Some(raw) = cfg.features.as_deref() else {
        return Ok(());
    };
    let f = crate::pve::Features::parse(raw).map_err(|e| unreadable("features", &e))?;
    let mut extra: Vec<String> = [
        ("keyctl", f.keyctl),
        ("fuse", f.fuse),
        ("mknod", f.mknod),
        ("force_rw_sys", f.force_rw_sys),
    ]
    .into_iter()
    .filter(|(_, on)| *on == Some(true))
    .map(|(n, _)| n.to_string())
    .collect();
    if !f.mount.is_empty() {
        extra.push(format!("mount={}", f.mount.join(";")));
    }
    extra.extend(f.extra.keys().cloned());
    if !extra.is_empty() && !allowed {
        return Err(Refusal::new(
            Reason::TenantPolicyFeatures,
            format!(
                "the container's features in Proxmox ({}, from its clone source or archive unless spec.features replaces them) go beyond nesting; the tenant may not use them",
                extra.join(", ")
            ),
        ));
    }
    Ok(())
}

/// One interface as Proxmox has it.
fn check_interface(net: &TenantNetwork, forced: bool, key: &str, n: &NetConfig) -> Result<(), Refusal> {
    let hint = "list the container's interfaces in spec.network: the operator then replaces the ones its clone source or archive brought";
    let refuse = |what: String| {
        Err(Refusal::new(
            Reason::TenantPolicyNetwork,
            format!("{key}: {what}; {hint}"),
        ))
    };
    if !net.bridges.is_empty() {
        let bridge = n.bridge.clone().unwrap_or_default();
        let Some(b) = net.bridges.iter().find(|b| b.name == bridge) else {
            let names: Vec<&str> = net.bridges.iter().map(|b| b.name.as_str()).collect();
            return refuse(format!(
                "bridge {bridge} is not one of the tenant's bridges ({})",
                names.join(", ")
            ));
        };
        let ok = match n.tag {
            Some(v) => b.vlans.contains(&v),
            None => b.vlans.is_empty() || b.allow_untagged,
        };
        if !ok {
            let what = n.tag.map(|v| format!("VLAN {v}")).unwrap_or_else(|| "untagged".into());
            return refuse(format!("{what} on bridge {bridge} is not allowed for the tenant"));
        }
        if !n.trunks.is_empty() {
            return refuse(format!("VLAN trunks on bridge {bridge} are not allowed for the tenant"));
        }
    }
    if forced && n.firewall != Some(true) {
        return refuse("the tenant's firewall is forced on, and this interface has no firewall=1".into());
    }
    for a in [n.ip.as_deref(), n.ip6.as_deref()].into_iter().flatten() {
        let literal = !matches!(a, "dhcp" | "manual" | "auto");
        if literal && !address_allowed(a, &net.address_ranges) {
            return Err(Refusal::new(
                Reason::TenantPolicyAddress,
                format!("{key}: address {a} is outside the tenant's address ranges; {hint}"),
            ));
        }
    }
    Ok(())
}

/// A bind mount or device in the config: allowed only with the privilege, inside its paths.
fn host_path(
    reason: Reason,
    field: &str,
    allowed: bool,
    prefixes: &[String],
    key: &str,
    path: &str,
) -> Result<(), Refusal> {
    if !allowed {
        return Err(Refusal::new(
            reason,
            format!("the container's {key} in Proxmox passes host path {path} into it; the tenant may not (its privileges.{field} is off)"),
        ));
    }
    if !path_allowed(path, prefixes) {
        return Err(Refusal::new(
            reason,
            format!("the container's {key} in Proxmox passes host path {path}, outside the tenant's allowed paths"),
        ));
    }
    Ok(())
}

/// `spec` counted at least as large as what Proxmox reports for the guest: memory (`maxmem`)
/// and root disk (`maxdisk`, e.g. a clone of a larger source, or a restored archive) each count
/// the larger of the two. Cores stay as the spec says (Proxmox reports every host CPU for a
/// container without `cores`, which the quota counts as one).
pub fn actual_footprint(spec: Footprint, maxmem: Option<u64>, maxdisk: Option<u64>) -> Footprint {
    if spec.containers == 0 {
        return spec;
    }
    let mib = maxmem.map(|b| b >> 20).unwrap_or(0);
    let gib = maxdisk.map(|b| b.div_ceil(1 << 30)).unwrap_or(0);
    Footprint {
        memory_mib: spec.memory_mib.max(mib),
        disk_gib: spec.disk_gib.max(gib),
        ..spec
    }
}

#[cfg(test)]
#[path = "actual_tests.rs"]
mod tests;
