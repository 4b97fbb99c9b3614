//! Tenancy: which namespaces may use which `ProxmoxCluster` and under which limits
//! (`ProxmoxTenant`), and ownership proven in Proxmox. The decisions are pure
//! ([`policy`], [`ownership`]); [`Views`] feeds them from the watch caches, and [`controller`]
//! keeps each tenant's status.

pub mod actual;
pub mod controller;
pub mod ownership;
pub mod policy;
pub mod secrets;

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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

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
    /// Whether the tenant and namespace caches have had their first full list.
    cluster_loaded: Arc<AtomicBool>,
    /// Watch scopes added, and how many of them have their container cache listed.
    scopes: AtomicUsize,
    scopes_loaded: Arc<AtomicUsize>,
}

/// Waits until `store` has its first full list (polling now and then, as
/// `controller::run` does: one waiter's wake can be lost to another's); `false` when its
/// writer is gone.
async fn listed<K>(store: Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(250), store.wait_until_ready()).await {
            Ok(r) => return r.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Runs `f` on the current runtime, if there is one (unit tests without one stay unloaded).
fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(f);
    }
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
    /// Until both have listed, [`Views::loaded`] is false.
    pub fn set_cluster_scoped(&self, tenants: Store<ProxmoxTenant>, namespaces: Store<PartialObjectMeta<Namespace>>) {
        let (t, n, flag) = (tenants.clone(), namespaces.clone(), self.cluster_loaded.clone());
        spawn(async move {
            if listed(t).await && listed(n).await {
                flag.store(true, Ordering::Release);
            }
        });
        let _ = self.tenants.set(tenants);
        let _ = self.namespaces.set(namespaces);
    }

    /// Whether every cache a tenancy decision reads has had its first full list: tenants,
    /// namespaces, and the containers of every watch scope (the quota counts them). Until then
    /// nothing may be admitted: an empty cache would read as "no tenant" or "no usage".
    pub fn loaded(&self) -> bool {
        let scopes = self.scopes.load(Ordering::Acquire);
        self.cluster_loaded.load(Ordering::Acquire)
            && scopes > 0
            && self.scopes_loaded.load(Ordering::Acquire) >= scopes
    }

    /// Marks the caches loaded without watches (a test world where no tenant exists).
    #[cfg(test)]
    pub(crate) fn assume_loaded(&self) {
        self.cluster_loaded.store(true, Ordering::Release);
        self.scopes.store(1, Ordering::Release);
        self.scopes_loaded.store(1, Ordering::Release);
    }

    /// Adds the container and template caches of one watch scope.
    pub fn add_scope(&self, containers: Store<LxcContainer>, templates: Store<LxcTemplate>, backups: Store<LxcBackup>) {
        self.scopes.fetch_add(1, Ordering::AcqRel);
        let (c, done) = (containers.clone(), self.scopes_loaded.clone());
        spawn(async move {
            if listed(c).await {
                done.fetch_add(1, Ordering::AcqRel);
            }
        });
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

    /// The uid of `namespace`, when the namespace cache knows it.
    pub fn namespace_uid(&self, namespace: &str) -> Option<String> {
        self.namespaces
            .get()?
            .get(&ObjectRef::new(namespace))?
            .metadata
            .uid
            .clone()
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
    /// Fails closed (`TenantPolicyPending`) until the caches are [loaded](Views::loaded).
    pub fn admission(&self, namespace: &str, handle: &ClusterHandle) -> Result<Admission, Refusal> {
        if !self.loaded() {
            return Err(Refusal::new(
                policy::PENDING,
                "the operator has not loaded its ProxmoxTenant, Namespace and LxcContainer caches yet; nothing is done until it knows which tenant's limits apply",
            ));
        }
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

    /// Every managed container and template of the tenant's namespaces that counts against its quota: made
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
                // what this process admitted (or found in Proxmox) is what the container
                // holds: a refused resize still counts at its old size, not at its spec's
                let made = c.status.as_ref().and_then(|s| s.vmid).is_some();
                match admitted.get(&uid) {
                    Some(f) => total += *f,
                    None if made => total += policy::footprint(&c.spec),
                    None => {}
                }
            }
        }
        // templates hold their disks (counted once they have a vmid, or once admitted)
        for store in recover(self.templates.read(), "the tenancy caches").iter() {
            for t in store.state() {
                let uid = t.uid().unwrap_or_default();
                let ns = t.namespace().unwrap_or_default();
                if Some(uid.as_str()) == except || !seen.insert(uid.clone()) {
                    continue;
                }
                let labels = labels_of.entry(ns.clone()).or_insert_with(|| self.labels(&ns));
                if !policy::covers(&tenant.spec, &ns, labels.as_ref()) {
                    continue;
                }
                let made = t
                    .status
                    .as_ref()
                    .is_some_and(|s| s.vmid.is_some() || !s.previous.is_empty());
                match admitted.get(&uid) {
                    Some(f) => total += *f,
                    None if made => total += crate::controller::template::footprint::footprint(&t),
                    None => {}
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
    /// limit it would exceed: on every pass, so a resize or a switch to `Full` is admitted like
    /// a create. The check and the reservation are one step under one lock, so concurrent
    /// admissions cannot overshoot. Admitted containers stay counted (at their last admitted
    /// footprint) until [`Views::retain`] drops them.
    pub fn admit_quota(&self, tenant: &ProxmoxTenant, uid: &str, this: Footprint) -> Result<(), Refusal> {
        let Some(quota) = &tenant.spec.quota else {
            return Ok(());
        };
        // one admission at a time: the count and the insert must not interleave
        static ONE: Mutex<()> = Mutex::new(());
        let _one = recover(ONE.lock(), "the tenancy caches");
        let before = recover(self.admitted.lock(), "the tenancy caches")
            .get(&tenant.name_any())
            .and_then(|m| m.get(uid).copied());
        // only growth is checked: a container that stays or shrinks keeps its place even when
        // the quota was narrowed below what the tenant has
        if before.is_none_or(|b| !this.within(&b)) {
            policy::quota_check(quota, self.usage(tenant, Some(uid)), this)?;
        }
        recover(self.admitted.lock(), "the tenancy caches")
            .entry(tenant.name_any())
            .or_default()
            .insert(uid.to_string(), this);
        Ok(())
    }

    /// The footprint container `uid` was last admitted (or recorded) at.
    pub fn admitted_of(&self, tenant: &ProxmoxTenant, uid: &str) -> Option<Footprint> {
        recover(self.admitted.lock(), "the tenancy caches")
            .get(&tenant.name_any())
            .and_then(|m| m.get(uid).copied())
    }

    /// Counts container `uid` at `have` (what Proxmox reports for it) without a check: a
    /// container whose growth was refused still holds what it has.
    pub fn record(&self, tenant: &ProxmoxTenant, uid: &str, have: Footprint) {
        recover(self.admitted.lock(), "the tenancy caches")
            .entry(tenant.name_any())
            .or_default()
            .insert(uid.to_string(), have);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_admitted_before_the_tenancy_caches_have_listed() {
        let v = Views::default();
        assert!(!v.loaded(), "an empty cache would read as no tenant and no usage");
        v.cluster_loaded.store(true, Ordering::Release);
        v.scopes.store(2, Ordering::Release);
        v.scopes_loaded.store(1, Ordering::Release);
        assert!(!v.loaded(), "one watch scope's containers are not listed yet");
        v.scopes_loaded.store(2, Ordering::Release);
        assert!(v.loaded());
    }
}
