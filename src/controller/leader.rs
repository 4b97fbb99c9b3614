//! Leader election on a `coordination.k8s.io/v1` Lease: with several replicas one reconciles,
//! the others wait. A leader that cannot renew its lease stops at once (the process exits and
//! Kubernetes restarts it as a standby), so two replicas never reconcile at the same time.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use std::time::Duration;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
    /// How often a standby retries.
    pub retry_every: Duration,
}

impl LeaseConfig {
    /// Defaults: 15 s lease, renewed every 5 s, standbys retry every 2 s.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// Whether a lease held by `holder` and last renewed at `renewed` (valid `duration_s`) can be
/// taken by `me` at `now`.
pub fn can_take(
    holder: Option<&str>,
    renewed: Option<jiff::Timestamp>,
    duration_s: i32,
    me: &str,
    now: jiff::Timestamp,
) -> bool {
    match (holder, renewed) {
        (None, _) | (Some(""), _) => true,
        (Some(h), _) if h == me => true,
        (Some(_), None) => true,
        (Some(_), Some(r)) => now.duration_since(r) > jiff::SignedDuration::from_secs(i64::from(duration_s)),
    }
}

/// Tries once to acquire or renew the lease. `Ok(true)` when this replica holds it now.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = jiff::Timestamp::now();
    let duration_s = cfg.duration.as_secs() as i32;
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(duration_s),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.as_deref();
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            if !can_take(
                holder,
                renewed,
                spec.lease_duration_seconds.unwrap_or(duration_s),
                &cfg.identity,
                now,
            ) {
                return Ok(false);
            }
            let transition = holder != Some(cfg.identity.as_str());
            let mut new = spec.clone();
            new.holder_identity = Some(cfg.identity.clone());
            new.lease_duration_seconds = Some(duration_s);
            new.renew_time = Some(MicroTime(now));
            if transition {
                new.acquire_time = Some(MicroTime(now));
                new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            lease.spec = Some(new);
            // replace carries the resourceVersion: a concurrent taker makes this a 409
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the lease, then keeps renewing it in the background; if a
/// renewal fails for longer than the lease lasts, the process exits.
pub async fn acquire_and_hold(client: kube::Client, cfg: LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut announced = false;
    loop {
        match try_acquire(&api, &cfg).await {
            Ok(true) => break,
            Ok(false) => {
                if !announced {
                    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "standing by: another replica holds the lease");
                    announced = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "lease check failed"),
        }
        tokio::time::sleep(cfg.retry_every).await;
    }
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became the leader");
    let deadline = renew_deadline(cfg.duration);
    tokio::spawn(async move {
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::time::sleep(cfg.renew_every).await;
            // every renewal is bounded: a call that hangs (an apiserver that stopped answering)
            // must not outlive the lease, or another replica takes over while we still act
            let left = deadline.saturating_sub(last_ok.elapsed());
            match tokio::time::timeout(left, try_acquire(&api, &cfg)).await {
                Ok(Ok(true)) => last_ok = std::time::Instant::now(),
                Ok(Ok(false)) => {
                    tracing::error!(lease = %cfg.name, "lost the lease to another replica; stopping now");
                    std::process::exit(1);
                }
                Ok(Err(e)) if last_ok.elapsed() < deadline => tracing::warn!(error = %e, "lease renewal failed"),
                Ok(Err(_)) | Err(_) => {
                    tracing::error!(lease = %cfg.name, deadline = ?deadline, "could not renew the lease in time; stopping before another replica can take over");
                    std::process::exit(1);
                }
            }
        }
    });
}

/// How long a leader may go without a renewal before it stops: two thirds of the lease, so it
/// has stopped well before another replica may take the lease over (a third of it, at least
/// 2 s, is left for clock skew and the exit).
pub fn renew_deadline(lease: Duration) -> Duration {
    (lease * 2 / 3).min(lease.saturating_sub(Duration::from_secs(2)))
}

#[cfg(test)]
mod tests {
    use super::can_take;
    use jiff::{SignedDuration, Timestamp};

    #[test]
    fn a_leader_stops_well_before_its_lease_could_pass_to_another() {
        assert_eq!(
            super::renew_deadline(std::time::Duration::from_secs(15)),
            std::time::Duration::from_secs(10)
        );
        assert_eq!(
            super::renew_deadline(std::time::Duration::from_secs(3)),
            std::time::Duration::from_secs(1)
        );
    }

    #[test]
    fn a_fresh_lease_of_another_replica_cannot_be_taken_and_an_expired_one_can() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let recent = now - SignedDuration::from_secs(5);
        let old = now - SignedDuration::from_secs(16);
        assert!(!can_take(Some("a"), Some(recent), 15, "b", now));
        assert!(can_take(Some("a"), Some(old), 15, "b", now));
        assert!(can_take(Some("b"), Some(recent), 15, "b", now));
        assert!(can_take(None, None, 15, "b", now));
    }
}
