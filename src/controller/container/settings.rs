//! The settings an `LxcContainer` and an `LxcTemplate` share, validated into what Proxmox
//! should have (pure): the container's own config ([`ManagedConfig`]), its root disk, its
//! interfaces and its tags. A container adds its source, mount points, devices and the rest
//! ([`super::desired::validate`]); a template adds its image (`template::build`).
//!
//! [`ContainerSettings`] is a view of either spec, so both CRDs keep their own fields (and
//! their own schema documentation) while the rules and the encoding exist once.

use super::managed::ManagedConfig;
use crate::controller::InvalidSpec;
use crate::crd::lxc_container::{
    Console, Dns, Features, LxcContainerSpec, NetworkInterface, Resources, RootFs, Startup,
};
use crate::crd::lxc_template::LxcTemplateSpec;
use crate::crd::IDENTITY_TAG_PREFIX;
use crate::pve::props::{self, Features as PveFeatures, NetConfig, Startup as PveStartup};
use std::collections::BTreeMap;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// The part of a spec that becomes the container's own settings, borrowed from an
/// `LxcContainer`'s or an `LxcTemplate`'s spec (a template has no DNS, console, time zone,
/// boot or protection settings: those are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerSettings<'a> {
    /// `spec.hostname` (`metadata.name` when `None`).
    pub hostname: Option<&'a str>,
    /// `spec.description`.
    pub description: Option<&'a str>,
    /// `spec.tags`.
    pub tags: &'a [String],
    /// `spec.unprivileged`.
    pub unprivileged: bool,
    /// `spec.resources`.
    pub resources: Option<&'a Resources>,
    /// `spec.rootfs`.
    pub rootfs: Option<&'a RootFs>,
    /// `spec.network`.
    pub network: &'a [NetworkInterface],
    /// `spec.features`.
    pub features: Option<&'a Features>,
    /// `spec.dns`.
    pub dns: Option<&'a Dns>,
    /// `spec.startOnBoot`.
    pub start_on_boot: Option<bool>,
    /// `spec.startup`.
    pub startup: Option<&'a Startup>,
    /// `spec.console`.
    pub console: Option<&'a Console>,
    /// `spec.timezone`.
    pub timezone: Option<&'a str>,
    /// `spec.protection`.
    pub protection: Option<bool>,
}

impl<'a> From<&'a LxcContainerSpec> for ContainerSettings<'a> {
    fn from(s: &'a LxcContainerSpec) -> Self {
        ContainerSettings {
            hostname: s.hostname.as_deref(),
            description: s.description.as_deref(),
            tags: &s.tags,
            unprivileged: s.unprivileged,
            resources: s.resources.as_ref(),
            rootfs: s.rootfs.as_deref(),
            network: &s.network,
            features: s.features.as_ref(),
            dns: s.dns.as_deref(),
            start_on_boot: s.start_on_boot,
            startup: s.startup.as_deref(),
            console: s.console.as_ref(),
            timezone: s.timezone.as_deref(),
            protection: s.protection,
        }
    }
}

impl<'a> From<&'a LxcTemplateSpec> for ContainerSettings<'a> {
    fn from(s: &'a LxcTemplateSpec) -> Self {
        ContainerSettings {
            description: s.description.as_deref(),
            tags: &s.tags,
            unprivileged: s.unprivileged,
            resources: s.resources.as_ref(),
            rootfs: s.rootfs.as_ref(),
            network: &s.network,
            features: s.features.as_ref(),
            ..Default::default()
        }
    }
}

/// The shared settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSettings {
    /// The scalar config keys the spec manages.
    pub config: ManagedConfig,
    /// Root disk: storage and size in GiB.
    pub rootfs: Option<(String, u32)>,
    /// `netN` interfaces by index; managed only when the spec lists at least one.
    pub nets: BTreeMap<u32, NetConfig>,
    /// The user's tags, normalized (lower-case, sorted, unique), without the identity tag.
    pub tags: Vec<String>,
    /// Unprivileged container.
    pub unprivileged: bool,
}

impl ValidSettings {
    /// Every tag the container must carry: the user's plus `identity_tag`, as Proxmox stores
    /// them.
    pub fn all_tags(&self, identity_tag: &str) -> Vec<String> {
        all_tags(&self.tags, identity_tag)
    }
}

/// The user's `tags` plus `identity_tag`, sorted, once each.
pub fn all_tags(tags: &[String], identity_tag: &str) -> Vec<String> {
    let mut t: Vec<String> = tags.to_vec();
    t.push(identity_tag.to_string());
    t.sort();
    t.dedup();
    t
}

/// The create call's `rootfs` (`STORAGE:GIB`, a new volume).
pub fn rootfs_param(rootfs: Option<&(String, u32)>) -> Option<String> {
    rootfs.and_then(|(s, g)| props::new_volume(s, *g).ok())
}

/// The create call's `netN` values.
pub fn net_params(nets: &BTreeMap<u32, NetConfig>) -> BTreeMap<u32, String> {
    nets.iter().filter_map(|(i, n)| Some((*i, n.encode().ok()?))).collect()
}

/// Checks the settings of the object named `name` and computes what Proxmox should have.
pub fn validate(s: &ContainerSettings<'_>, name: &str) -> Result<ValidSettings, InvalidSpec> {
    let hostname = s.hostname.unwrap_or(name).to_string();
    check_hostname("hostname", &hostname)?;
    let mut config = ManagedConfig {
        hostname,
        ..Default::default()
    };
    if let Some(d) = s.description {
        if d.len() > 8192 {
            return Err(invalid("description", "longer than 8192 characters"));
        }
        config.description = Some(d.trim_end().to_string());
    }
    if let Some(r) = s.resources {
        resources(r, &mut config)?;
    }
    let rootfs = match s.rootfs {
        Some(r) => Some((storage_id("rootfs.storage", &r.storage)?, gib("rootfs.size", &r.size)?)),
        None => None,
    };
    let nets = super::desired_net::networks(s.network)?;
    dns(s.dns, &mut config)?;
    options(s, &mut config)?;
    console_and_timezone(s, &mut config)?;
    Ok(ValidSettings {
        config,
        rootfs,
        nets,
        tags: user_tags(s.tags)?,
        unprivileged: s.unprivileged,
    })
}

/// `cores`, `cpulimit`, `cpuunits`, `memory` and `swap` from `spec.resources`.
fn resources(r: &Resources, config: &mut ManagedConfig) -> Result<(), InvalidSpec> {
    if let Some(c) = r.cores {
        if !(1..=8192).contains(&c) {
            return Err(invalid("resources.cores", format!("{c} is outside 1..8192")));
        }
        config.cores = Some(c);
    }
    if let Some(l) = &r.cpu_limit {
        let v: f64 = l
            .parse()
            .map_err(|_| invalid("resources.cpuLimit", format!("{l:?} is not a number")))?;
        if !(0.0..=8192.0).contains(&v) {
            return Err(invalid("resources.cpuLimit", format!("{l} is outside 0..8192")));
        }
        config.cpulimit = Some(v);
    }
    if let Some(u) = r.cpu_units {
        if u > 500_000 {
            return Err(invalid("resources.cpuUnits", format!("{u} is above 500000")));
        }
        config.cpuunits = Some(u);
    }
    if let Some(m) = &r.memory {
        let mib = m.to_mib().map_err(|e| invalid("resources.memory", e.to_string()))?;
        if mib < 16 {
            return Err(invalid(
                "resources.memory",
                format!("{} is below the Proxmox minimum of 16Mi", m.0),
            ));
        }
        config.memory_mib = Some(mib);
    }
    if let Some(s) = &r.swap {
        config.swap_mib = Some(s.to_mib().map_err(|e| invalid("resources.swap", e.to_string()))?);
    }
    Ok(())
}

/// `nameserver` and `searchdomain` from `spec.dns`.
fn dns(dns: Option<&Dns>, config: &mut ManagedConfig) -> Result<(), InvalidSpec> {
    let Some(dns) = dns else { return Ok(()) };
    for (i, ns) in dns.nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                format!("dns.nameservers[{i}]"),
                format!("{ns:?} is not an IP address"),
            ));
        }
    }
    config.nameservers = dns.nameservers.clone();
    if let Some(sd) = &dns.search_domain {
        check_hostname("dns.searchDomain", sd)?;
        config.searchdomain = Some(sd.clone());
    }
    Ok(())
}

/// `features`, `onboot`, `startup` and `protection`.
fn options(s: &ContainerSettings<'_>, config: &mut ManagedConfig) -> Result<(), InvalidSpec> {
    if let Some(f) = s.features {
        // keyctl and fuse are only sent when on: Proxmox lets API tokens change nothing but
        // `nesting`, and off is their default anyway
        let pf = PveFeatures {
            nesting: f.nesting,
            keyctl: f.keyctl.filter(|k| *k),
            fuse: f.fuse.filter(|k| *k),
            ..Default::default()
        };
        let enc = pf.encode().map_err(|e| invalid("features", e.to_string()))?;
        config.features = (!enc.is_empty()).then_some(pf);
    }
    config.onboot = s.start_on_boot;
    if let Some(st) = s.startup {
        let ps = PveStartup {
            order: st.order,
            up: st.up_delay_seconds,
            down: st.down_delay_seconds,
        };
        config.startup = (!ps.encode().is_empty()).then_some(ps);
    }
    config.protection = s.protection;
    Ok(())
}

/// `cmode`, `tty` and `timezone`.
fn console_and_timezone(s: &ContainerSettings<'_>, config: &mut ManagedConfig) -> Result<(), InvalidSpec> {
    if let Some(c) = s.console {
        config.cmode = c.mode;
        if let Some(t) = c.ttys {
            if t > 6 {
                return Err(invalid("console.ttys", format!("{t} is outside 0..6")));
            }
            config.tty = Some(t);
        }
    }
    if let Some(tz) = s.timezone {
        let zone = tz.split('/').count() <= 3
            && tz.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
            });
        if !(tz == "host" || zone) || tz.len() > 64 {
            return Err(invalid(
                "timezone",
                format!("{tz:?} is not host, UTC or a zone like Europe/Berlin"),
            ));
        }
        config.timezone = Some(tz.to_string());
    }
    Ok(())
}

/// The user's tags, lower-cased, sorted, once each (the identity tag's prefix is reserved).
fn user_tags(spec_tags: &[String]) -> Result<Vec<String>, InvalidSpec> {
    let mut tags = Vec::new();
    for (i, t) in spec_tags.iter().enumerate() {
        let t = t.to_ascii_lowercase();
        if t.starts_with(IDENTITY_TAG_PREFIX) {
            return Err(invalid(
                format!("tags[{i}]"),
                format!("tags starting with {IDENTITY_TAG_PREFIX:?} are reserved for the operator's identity tag"),
            ));
        }
        props::encode_tags([&t]).map_err(|e| invalid(format!("tags[{i}]"), e.to_string()))?;
        tags.push(t);
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Checks a host name (or a search domain): dot-separated labels of letters, digits and `-`.
pub(super) fn check_hostname(field: &str, h: &str) -> Result<(), InvalidSpec> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(field, format!("{h:?} is not a valid host name")))
    }
}

/// Checks a storage id.
pub(super) fn storage_id(field: &str, s: &str) -> Result<String, InvalidSpec> {
    let ok = s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(invalid(field, format!("{s:?} is not a storage id")))
    }
}

/// A disk size in whole GiB (at least 1).
pub(super) fn gib(field: &str, q: &crate::crd::ByteQuantity) -> Result<u32, InvalidSpec> {
    let mib = q.to_mib().map_err(|e| invalid(field, e.to_string()))?;
    if mib == 0 || mib % 1024 != 0 {
        return Err(invalid(
            field,
            format!("{} is not a whole number of GiB (at least 1Gi)", q.0),
        ));
    }
    u32::try_from(mib / 1024).map_err(|_| invalid(field, format!("{} is too large", q.0)))
}
