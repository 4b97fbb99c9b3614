//! Tenancy: which namespaces may use which `ProxmoxCluster` and under which limits
//! (`ProxmoxTenant`), and ownership proven in Proxmox. The decisions are pure
//! ([`policy`], [`ownership`]); [`Views`] feeds them from the watch caches, and [`controller`]
//! keeps each tenant's status.

pub mod controller;
pub mod ownership;
pub mod policy;

use crate::controller::cluster::ClusterHandle;
use crate::controller::kernel::recover;
use crate::crd::{LxcBackup, LxcBackupSchedule, LxcContainer, LxcSnapshot, LxcTemplate, ProxmoxTenant};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use ownership::GuestOwner;
use policy::{Admission, Footprint, Refusal};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, OnceLock, RwLock};

/// The caches tenancy decisions read: tenants, namespace labels, and every container and
/// template (to tell which namespace an identity tag's uid belongs to). Set once when the
/// controllers start; before that (and in unit tests) no tenant exists.
#[derive(Default)]
pub struct Views {
    tenants: OnceLock<Store<ProxmoxTenant>>,
    namespaces: OnceLock<Store<PartialObjectMeta<Namespace>>>,
    containers: RwLock<Vec<Store<LxcContainer>>>,
    templates: RwLock<Vec<Store<LxcTemplate>>>,
    backups: RwLock<Vec<Store<LxcBackup>>>,
    schedules: RwLock<Vec<Store<LxcBackupSchedule>>>,
    snapshots: RwLock<Vec<Store<LxcSnapshot>>>,
    snapshot_schedules: RwLock<Vec<Store<crate::crd::LxcSnapshotSchedule>>>,
    /// Containers admitted against a quota by this process whose vmid may not be in the cache
    /// yet, per tenant: the check and the admission are one step, so a burst of creates cannot
    /// overshoot the quota.
    admitted: Mutex<HashMap<String, HashMap<String, Footprint>>>,
}

/// Every object of a list of caches.
fn all<K: kube::runtime::reflector::Lookup + Clone + 'static>(stores: &RwLock<Vec<Store<K>>>) -> Vec<std::sync::Arc<K>>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    recover(stores.read(), "the tenancy caches")
        .iter()
        .flat_map(|s| s.state())
        .collect()
}

impl Views {
    /// Installs the tenant and namespace caches.
    pub fn set_cluster_scoped(&self, tenants: Store<ProxmoxTenant>, namespaces: Store<PartialObjectMeta<Namespace>>) {
        let _ = self.tenants.set(tenants);
        let _ = self.namespaces.set(namespaces);
    }

    /// Adds the container and template caches of one watch scope.
    pub fn add_scope(&self, containers: Store<LxcContainer>, templates: Store<LxcTemplate>, backups: Store<LxcBackup>) {
        recover(self.containers.write(), "the tenancy caches").push(containers);
        recover(self.templates.write(), "the tenancy caches").push(templates);
        recover(self.backups.write(), "the tenancy caches").push(backups);
    }

    /// Adds the schedule cache of one watch scope (read by the token preflight).
    pub fn add_schedules(&self, schedules: Store<LxcBackupSchedule>) {
        recover(self.schedules.write(), "the tenancy caches").push(schedules);
    }

    /// Adds the snapshot cache of one watch scope (read by the token preflight).
    pub fn add_snapshots(&self, snapshots: Store<LxcSnapshot>) {
        recover(self.snapshots.write(), "the tenancy caches").push(snapshots);
    }

    /// Every cached backup schedule.
    pub fn all_schedules(&self) -> Vec<std::sync::Arc<LxcBackupSchedule>> {
        all(&self.schedules)
    }

    /// Adds the snapshot schedule cache of one watch scope (read by the token preflight).
    pub fn add_snapshot_schedules(&self, schedules: Store<crate::crd::LxcSnapshotSchedule>) {
        recover(self.snapshot_schedules.write(), "the tenancy caches").push(schedules);
    }

    /// Every cached snapshot schedule.
    pub fn all_snapshot_schedules(&self) -> Vec<std::sync::Arc<crate::crd::LxcSnapshotSchedule>> {
        all(&self.snapshot_schedules)
    }

    /// Every cached snapshot.
    pub fn all_snapshots(&self) -> Vec<std::sync::Arc<LxcSnapshot>> {
        all(&self.snapshots)
    }

    /// Every cached container.
    pub fn all_containers(&self) -> Vec<std::sync::Arc<LxcContainer>> {
        recover(self.containers.read(), "the tenancy caches")
            .iter()
            .flat_map(|s| s.state())
            .collect()
    }

    /// Every cached template.
    pub fn all_templates(&self) -> Vec<std::sync::Arc<LxcTemplate>> {
        recover(self.templates.read(), "the tenancy caches")
            .iter()
            .flat_map(|s| s.state())
            .collect()
    }

    /// Every cached backup.
    pub fn all_backups(&self) -> Vec<std::sync::Arc<LxcBackup>> {
        recover(self.backups.read(), "the tenancy caches")
            .iter()
            .flat_map(|s| s.state())
            .collect()
    }

    /// Every tenant.
    pub fn tenants(&self) -> Vec<std::sync::Arc<ProxmoxTenant>> {
        self.tenants.get().map(|s| s.state()).unwrap_or_default()
    }

    /// The labels of `namespace`, when the namespace cache knows it.
    pub fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let store = self.namespaces.get()?;
        store
            .get(&ObjectRef::new(namespace))
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
    }

    /// Every namespace the cache knows, with its labels.
    pub fn namespaces(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let Some(store) = self.namespaces.get() else {
            return Vec::new();
        };
        store
            .state()
            .iter()
            .map(|n| (n.name_any(), n.metadata.labels.clone().unwrap_or_default()))
            .collect()
    }

    /// What `namespace` may do on the cluster of `handle`.
    pub fn admission(&self, namespace: &str, handle: &ClusterHandle) -> Result<Admission, Refusal> {
        let labels = self.labels(namespace);
        policy::admit(
            &handle.key.name,
            handle.tenancy,
            namespace,
            labels.as_ref(),
            &self.tenants(),
        )
    }

    /// The namespace of the container or template with `uid` (identity tags are lower-case).
    pub fn namespace_of(&self, uid: &str) -> Option<String> {
        for s in recover(self.containers.read(), "the tenancy caches").iter() {
            if let Some(o) = s.state().iter().find(|o| uid_matches(&o.metadata, uid)) {
                return o.namespace();
            }
        }
        for s in recover(self.templates.read(), "the tenancy caches").iter() {
            if let Some(o) = s.state().iter().find(|o| uid_matches(&o.metadata, uid)) {
                return o.namespace();
            }
        }
        None
    }

    /// Who a guest with `tags` belongs to.
    pub fn owner_of(&self, tags: &[String]) -> GuestOwner {
        match ownership::identity_uid(tags) {
            None => GuestOwner::Untagged,
            Some(uid) => self
                .namespace_of(uid)
                .map(GuestOwner::Namespace)
                .unwrap_or(GuestOwner::UnknownObject),
        }
    }

    /// Every managed container of the tenant's namespaces that counts against its quota: made
    /// already (a vmid in status) or admitted by this process; `except` left out.
    fn usage(&self, tenant: &ProxmoxTenant, except: Option<&str>) -> Footprint {
        let admitted = recover(self.admitted.lock(), "the tenancy caches")
            .get(&tenant.name_any())
            .cloned()
            .unwrap_or_default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut total = Footprint::default();
        let mut labels_of: HashMap<String, Option<BTreeMap<String, String>>> = HashMap::new();
        for store in recover(self.containers.read(), "the tenancy caches").iter() {
            for c in store.state() {
                let uid = c.uid().unwrap_or_default();
                let ns = c.namespace().unwrap_or_default();
                if Some(uid.as_str()) == except || !seen.insert(uid.clone()) {
                    continue;
                }
                let labels = labels_of.entry(ns.clone()).or_insert_with(|| self.labels(&ns));
                if !policy::covers(&tenant.spec, &ns, labels.as_ref()) {
                    continue;
                }
                let made = c.status.as_ref().and_then(|s| s.vmid).is_some();
                if made || admitted.contains_key(&uid) {
                    total += policy::footprint(&c.spec);
                }
            }
        }
        // admitted by this process but not in the cache yet
        for (uid, f) in admitted {
            if Some(uid.as_str()) != except && !seen.contains(&uid) {
                total += f;
            }
        }
        total
    }

    /// The tenant's usage now (for its status).
    pub fn usage_of(&self, tenant: &ProxmoxTenant) -> Footprint {
        self.usage(tenant, None)
    }

    /// Admits container `uid` with `this` footprint against the tenant's quota, or says which
    /// limit it would exceed. Admitted containers stay counted until [`Views::retain`] drops them.
    pub fn admit_quota(&self, tenant: &ProxmoxTenant, uid: &str, this: Footprint) -> Result<(), Refusal> {
        let Some(quota) = &tenant.spec.quota else {
            return Ok(());
        };
        // one admission at a time: the count and the insert must not interleave
        static ONE: Mutex<()> = Mutex::new(());
        let _one = recover(ONE.lock(), "the tenancy caches");
        policy::quota_check(quota, self.usage(tenant, Some(uid)), this)?;
        recover(self.admitted.lock(), "the tenancy caches")
            .entry(tenant.name_any())
            .or_default()
            .insert(uid.to_string(), this);
        Ok(())
    }

    /// Forgets admissions of objects `keep` rejects (gone from every cache).
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        for m in recover(self.admitted.lock(), "the tenancy caches").values_mut() {
            m.retain(|uid, _| keep(uid));
        }
    }
}

fn uid_matches(m: &kube::api::ObjectMeta, uid: &str) -> bool {
    m.uid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(uid))
}
