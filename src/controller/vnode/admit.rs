//! Which namespaces' Pods a cluster's virtual nodes run (pure): a Pod makes the operator create
//! a container on Proxmox for whoever may create a Pod, so serving a namespace is an explicit
//! grant, by the tenant (`privileges.pods`) or, for namespaces no tenant covers on an `Open`
//! cluster, by the cluster (`virtualNodes.namespaces: All`).

use super::translate::Refusal;
use crate::controller::tenancy::policy::{Admission, Refusal as TenancyRefusal};
use crate::crd::proxmox_cluster::VirtualNodeNamespaces;

/// Whether the Pods of `namespace` run on the virtual nodes of `cluster`, given what the
/// cluster's tenancy says of the namespace; `Err` is the refusal the Pod shows.
pub fn serves(
    cluster: &str,
    namespaces: VirtualNodeNamespaces,
    namespace: &str,
    admission: Result<&Admission, &TenancyRefusal>,
) -> Result<(), Refusal> {
    let refuse = |message: String| Refusal {
        reason: "NamespaceNotServed",
        message,
    };
    match admission {
        Err(r) => Err(refuse(format!(
            "{}: ProxmoxCluster {cluster} does not admit namespace {namespace}: {}",
            r.reason.as_str(),
            r.message
        ))),
        Ok(Admission::Tenant(t)) if t.spec.privileges.as_ref().is_some_and(|p| p.pods) => Ok(()),
        Ok(Admission::Tenant(t)) => Err(refuse(format!(
            "ProxmoxTenant {} does not allow Pods on virtual nodes (spec.privileges.pods is false): ask the cluster admin to grant it",
            t.metadata.name.clone().unwrap_or_default()
        ))),
        Ok(Admission::Open) if namespaces == VirtualNodeNamespaces::All => Ok(()),
        Ok(Admission::Open) => Err(refuse(format!(
            "namespace {namespace} is not a ProxmoxTenant's with privileges.pods, and ProxmoxCluster {cluster} serves only those (spec.virtualNodes.namespaces: Tenants); an admin sets it to All to run every namespace's Pods"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::kernel::Reason;
    use crate::crd::proxmox_tenant::{ProxmoxTenant, ProxmoxTenantSpec, TenantPrivileges};
    use std::sync::Arc;

    fn tenant(pods: bool) -> Admission {
        let mut t = ProxmoxTenant::new(
            "team-a",
            ProxmoxTenantSpec {
                privileges: Some(TenantPrivileges {
                    pods,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        t.metadata.name = Some("team-a".into());
        Admission::Tenant(Arc::new(t))
    }

    #[test]
    fn a_namespace_is_served_only_by_an_explicit_grant() {
        use VirtualNodeNamespaces::{All, Tenants};
        let refused = TenancyRefusal::new(Reason::TenantPolicyClusterNotAllowed, "no tenant names this namespace");
        let (granted, ungranted, open) = (tenant(true), tenant(false), Admission::Open);
        type Case<'a> = (
            &'a str,
            VirtualNodeNamespaces,
            Result<&'a Admission, &'a TenancyRefusal>,
            bool,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            ("tenant granting pods", Tenants, Ok(&granted), true, ""),
            ("tenant granting pods, All", All, Ok(&granted), true, ""),
            (
                "tenant without the grant",
                Tenants,
                Ok(&ungranted),
                false,
                "spec.privileges.pods",
            ),
            (
                "tenant without the grant, All",
                All,
                Ok(&ungranted),
                false,
                "spec.privileges.pods",
            ),
            ("no tenant, default", Tenants, Ok(&open), false, "namespaces: Tenants"),
            ("no tenant, All", All, Ok(&open), true, ""),
            (
                "Restricted cluster, no tenant",
                All,
                Err(&refused),
                false,
                "does not admit",
            ),
        ];
        for (what, policy, admission, ok, says) in cases {
            let got = serves("prod", policy, "apps", admission);
            assert_eq!(got.is_ok(), ok, "{what}: {got:?}");
            if let Err(r) = got {
                assert_eq!(r.reason, "NamespaceNotServed", "{what}");
                assert!(r.message.contains(says), "{what}: {}", r.message);
            }
        }
    }
}
