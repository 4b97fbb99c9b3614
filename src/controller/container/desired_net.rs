//! `spec.network` validated into the `netN` values Proxmox takes (pure; part of
//! [`super::desired::validate`]).

use crate::controller::InvalidSpec;
use crate::crd::lxc_container::NetworkInterface;
use crate::pve::props::NetConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// The spec's interfaces as Proxmox `netN` values, by index: names and MACs once each, bridge
/// names, addresses, gateways, VLAN, MTU and rate checked.
pub(super) fn networks(list: &[NetworkInterface]) -> Result<BTreeMap<u32, NetConfig>, InvalidSpec> {
    if list.len() > 32 {
        return Err(invalid("network", "at most 32 interfaces"));
    }
    let mut names = BTreeSet::new();
    let mut macs = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (i, n) in list.iter().enumerate() {
        let f = |k: &str| format!("network[{i}].{k}");
        if n.name.is_empty()
            || n.name.len() > 15
            || !n
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(f("name"), format!("{:?} is not an interface name", n.name)));
        }
        if !names.insert(n.name.clone()) {
            return Err(invalid(f("name"), format!("{} is used twice", n.name)));
        }
        let b = &n.bridge;
        if b.is_empty()
            || b.len() > 15
            || !b.starts_with(|c: char| c.is_ascii_alphabetic())
            || !b
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(f("bridge"), format!("{b:?} is not a bridge name")));
        }
        let mut nc = NetConfig {
            name: n.name.clone(),
            bridge: Some(b.clone()),
            net_type: Some("veth".into()),
            ..Default::default()
        };
        ipv4(i, n, &mut nc)?;
        ipv6(i, n, &mut nc)?;
        link(i, n, &mut nc)?;
        mac(i, n, &mut macs, &mut nc)?;
        nc.encode()
            .map_err(|e| invalid(format!("network[{i}]"), e.to_string()))?;
        out.insert(i as u32, nc);
    }
    Ok(out)
}

/// The interface's IPv4 settings: DHCP, or a static address with a gateway inside it.
fn ipv4(i: usize, n: &NetworkInterface, nc: &mut NetConfig) -> Result<(), InvalidSpec> {
    let f = |k: &str| format!("network[{i}].{k}");
    if let Some(v4) = &n.ipv4 {
        match (v4.dhcp, &v4.address) {
            (Some(true), None) => {
                if v4.gateway.is_some() {
                    return Err(invalid(f("ipv4.gateway"), "a gateway only goes with a static address"));
                }
                nc.ip = Some("dhcp".into());
            }
            (None | Some(false), Some(addr)) => {
                let (ip, prefix) = parse_cidr4(addr).ok_or_else(|| {
                    invalid(
                        f("ipv4.address"),
                        format!("{addr:?} is not an IPv4 address with prefix, e.g. 10.0.0.5/24"),
                    )
                })?;
                nc.ip = Some(addr.clone());
                if let Some(gw) = &v4.gateway {
                    let g: Ipv4Addr = gw
                        .parse()
                        .map_err(|_| invalid(f("ipv4.gateway"), format!("{gw:?} is not an IPv4 address")))?;
                    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
                    if u32::from(g) & mask != u32::from(ip) & mask {
                        return Err(invalid(f("ipv4.gateway"), format!("{gw} is outside {addr}")));
                    }
                    if g == ip {
                        return Err(invalid(
                            f("ipv4.gateway"),
                            format!("{gw} is the interface's own address"),
                        ));
                    }
                    nc.gw = Some(gw.clone());
                }
            }
            _ => return Err(invalid(f("ipv4"), "set either dhcp: true or address")),
        }
    }
    Ok(())
}

/// The interface's IPv6 settings: exactly one of SLAAC, DHCP or a static address.
fn ipv6(i: usize, n: &NetworkInterface, nc: &mut NetConfig) -> Result<(), InvalidSpec> {
    let f = |k: &str| format!("network[{i}].{k}");
    if let Some(v6) = &n.ipv6 {
        let set = [v6.auto == Some(true), v6.dhcp == Some(true), v6.address.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if set != 1 {
            return Err(invalid(
                f("ipv6"),
                "set exactly one of auto: true, dhcp: true or address",
            ));
        }
        if v6.auto == Some(true) {
            nc.ip6 = Some("auto".into());
        } else if v6.dhcp == Some(true) {
            nc.ip6 = Some("dhcp".into());
        } else if let Some(addr) = &v6.address {
            let ok = addr
                .split_once('/')
                .is_some_and(|(a, p)| a.parse::<Ipv6Addr>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= 128));
            if !ok {
                return Err(invalid(
                    f("ipv6.address"),
                    format!("{addr:?} is not an IPv6 address with prefix, e.g. fd00::5/64"),
                ));
            }
            nc.ip6 = Some(addr.clone());
        }
        if let Some(gw) = &v6.gateway {
            if v6.address.is_none() {
                return Err(invalid(f("ipv6.gateway"), "a gateway only goes with a static address"));
            }
            gw.parse::<Ipv6Addr>()
                .map_err(|_| invalid(f("ipv6.gateway"), format!("{gw:?} is not an IPv6 address")))?;
            nc.gw6 = Some(gw.clone());
        }
    }
    Ok(())
}

/// VLAN tag, firewall flag, host management, MTU and rate limit.
fn link(i: usize, n: &NetworkInterface, nc: &mut NetConfig) -> Result<(), InvalidSpec> {
    let f = |k: &str| format!("network[{i}].{k}");
    if let Some(v) = n.vlan {
        if !(1..=4094).contains(&v) {
            return Err(invalid(f("vlan"), format!("{v} is outside 1..4094")));
        }
        nc.tag = Some(v);
    }
    nc.firewall = n.firewall;
    if n.host_managed == Some(true) && nc.ip6.as_deref() == Some("auto") {
        return Err(invalid(
            f("hostManaged"),
            "SLAAC (ipv6.auto) is not supported for a host-managed interface (Proxmox's rule)",
        ));
    }
    nc.host_managed = n.host_managed;
    if let Some(m) = n.mtu {
        nc.mtu = Some(
            u16::try_from(m)
                .ok()
                .filter(|m| *m >= 64)
                .ok_or_else(|| invalid(f("mtu"), format!("{m} is outside 64..65535")))?,
        );
    }
    let rate = match (n.rate_megabytes_per_second, n.rate_mbps) {
        (Some(a), Some(b)) if a != b => {
            let msg = format!("{b} differs from rateMegabytesPerSecond {a}: rateMbps is its old name, set only one");
            return Err(invalid(f("rateMbps"), msg));
        }
        (Some(r), _) => Some(("rateMegabytesPerSecond", r)),
        (None, r) => r.map(|r| ("rateMbps", r)),
    };
    if let Some((name, r)) = rate {
        if !r.is_finite() || r < 0.0 {
            return Err(invalid(f(name), format!("{r} is not a non-negative number")));
        }
        nc.rate = Some(r);
    }
    Ok(())
}

/// A fixed MAC: unicast, each once (`macs`, upper case).
fn mac(i: usize, n: &NetworkInterface, macs: &mut BTreeSet<String>, nc: &mut NetConfig) -> Result<(), InvalidSpec> {
    let f = |k: &str| format!("network[{i}].{k}");
    if let Some(mac) = &n.mac {
        let bytes: Vec<u8> = mac
            .split(':')
            .filter_map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
            .collect();
        if bytes.len() != 6 || mac.len() != 17 {
            return Err(invalid(
                f("mac"),
                format!("{mac:?} is not a MAC address XX:XX:XX:XX:XX:XX"),
            ));
        }
        if bytes[0] & 1 == 1 {
            return Err(invalid(f("mac"), format!("{mac} is a multicast address")));
        }
        let up = mac.to_ascii_uppercase();
        if !macs.insert(up.clone()) {
            return Err(invalid(f("mac"), format!("{mac} is used twice")));
        }
        nc.hwaddr = Some(up);
    }
    Ok(())
}

fn parse_cidr4(s: &str) -> Option<(Ipv4Addr, u32)> {
    let (a, p) = s.split_once('/')?;
    let p: u32 = p.parse().ok().filter(|p| *p <= 32)?;
    Some((a.parse().ok()?, p))
}
