//! Authentication of `/metrics` (`--metrics-auth`) and of the virtual nodes' kubelet endpoint,
//! as controller-runtime's secure metrics, kube-rbac-proxy and a kubelet's webhook mode do it:
//! the request's `Authorization: Bearer <token>` is checked with a `TokenReview`, then the
//! token's user with a `SubjectAccessReview` ([`Access`]: `get` on the non-resource URL
//! `/metrics`, or on `nodes/proxy` of the Node a Pod's log is asked of). Allowed tokens are
//! remembered for a short while (a bounded cache keyed by the SHA-256 of the token and the
//! access), so a scraper costs two apiserver calls a minute at most.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The path a scraper must be allowed to `get`.
pub const METRICS_PATH: &str = "/metrics";

/// How long an allowed token is trusted without asking the apiserver again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// At most this many allowed tokens are remembered (the oldest are dropped first).
pub const CACHE_MAX: usize = 256;

/// At most this many reviews run at once: a flood of bad tokens (which are not cached) waits
/// here instead of being passed on to the apiserver all together.
pub const CONCURRENT_REVIEWS: usize = 4;

/// What a caller must be allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `get` on a non-resource URL, e.g. `/metrics`.
    NonResource(String),
    /// `get` on a subresource of a cluster-scoped object, e.g. `nodes/proxy` of one Node.
    Subresource {
        /// The resource, e.g. `nodes`.
        resource: String,
        /// The subresource, e.g. `proxy`.
        subresource: String,
        /// The object's name.
        name: String,
    },
}

impl Access {
    /// `get /metrics`.
    pub fn metrics() -> Access {
        Access::NonResource(METRICS_PATH.into())
    }

    /// `get nodes/proxy` of Node `node` (what a kubelet asks for `/containerLogs`).
    pub fn node_proxy(node: &str) -> Access {
        Access::Subresource {
            resource: "nodes".into(),
            subresource: "proxy".into(),
            name: node.into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Access::NonResource(path) => format!("get {path}"),
            Access::Subresource {
                resource,
                subresource,
                name,
            } => format!("get {resource}/{subresource} of {name}"),
        }
    }
}

/// The answer to a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token is valid and its user may do what was asked.
    Allowed,
    /// No bearer token, or one the apiserver does not accept: 401.
    Unauthenticated(String),
    /// A valid token whose user may not: 403.
    Forbidden(String),
}

/// Why the apiserver could not answer a review.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TokenReview or SubjectAccessReview request failed.
    #[error("{review}: {source}")]
    Review {
        /// Which review.
        review: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The apiserver did not answer within [`REVIEW_TIMEOUT`].
    #[error("the token and access reviews took more than {REVIEW_TIMEOUT:?}")]
    Timeout,
}

/// How long the two reviews of one request may take together.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks `/metrics` credentials against the apiserver, with a cache of allowed tokens.
pub struct MetricsAuth {
    client: kube::Client,
    ttl: Duration,
    allowed: Mutex<HashMap<[u8; 32], Instant>>,
    reviews: tokio::sync::Semaphore,
}

impl MetricsAuth {
    /// An authenticator asking the apiserver of `client`.
    pub fn new(client: kube::Client) -> Self {
        Self::with_ttl(client, CACHE_TTL)
    }

    /// [`MetricsAuth::new`] with another cache lifetime.
    pub fn with_ttl(client: kube::Client, ttl: Duration) -> Self {
        MetricsAuth {
            client,
            ttl,
            allowed: Mutex::default(),
            reviews: tokio::sync::Semaphore::new(CONCURRENT_REVIEWS),
        }
    }

    /// Checks the value of a `/metrics` request's `Authorization` header (`None` when it has none).
    pub async fn check(&self, authorization: Option<&str>) -> Result<Verdict, Error> {
        self.check_access(authorization, &Access::metrics()).await
    }

    /// Checks that the bearer token of `authorization` is valid and its user allowed `access`.
    pub async fn check_access(&self, authorization: Option<&str>, access: &Access) -> Result<Verdict, Error> {
        let Some(token) = bearer(authorization) else {
            return Ok(Verdict::Unauthenticated("a bearer token is required".into()));
        };
        let mut hasher = Sha256::new();
        hasher.update(token.as_bytes());
        hasher.update([0]);
        hasher.update(access.describe().as_bytes());
        let key: [u8; 32] = hasher.finalize().into();
        if self.cached(&key) {
            return Ok(Verdict::Allowed);
        }
        let _permit = self.reviews.acquire().await.expect("the semaphore is never closed");
        // another request with the same token may have been allowed meanwhile
        if self.cached(&key) {
            return Ok(Verdict::Allowed);
        }
        let verdict = tokio::time::timeout(REVIEW_TIMEOUT, self.review(token, access))
            .await
            .map_err(|_| Error::Timeout)??;
        if verdict == Verdict::Allowed {
            self.remember(key);
        }
        Ok(verdict)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.allowed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.lock().get(key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut map = self.lock();
        let ttl = self.ttl;
        map.retain(|_, at| at.elapsed() < ttl);
        while map.len() >= CACHE_MAX {
            let Some(oldest) = map.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(key, Instant::now());
    }

    /// Creates a review (cluster-scoped, answered in the response) and returns the answer.
    async fn ask<K>(&self, review: &K) -> Result<K, Error>
    where
        K: k8s_openapi::Resource<Scope = k8s_openapi::ClusterResourceScope>
            + kube::Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        Api::<K>::all(self.client.clone())
            .create(&PostParams::default(), review)
            .await
            .map_err(|source| Error::Review {
                review: K::KIND,
                source,
            })
    }

    async fn review(&self, token: &str, access: &Access) -> Result<Verdict, Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let status = self.ask(&review).await?.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => user,
            _ => {
                let why = status.error.unwrap_or_else(|| "the token is not valid".into());
                return Ok(Verdict::Unauthenticated(why));
            }
        };
        let name = user.username.clone().unwrap_or_default();
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user
                    .extra
                    .map(|e| e.into_iter().collect::<std::collections::BTreeMap<_, _>>()),
                non_resource_attributes: match access {
                    Access::NonResource(path) => Some(NonResourceAttributes {
                        path: Some(path.clone()),
                        verb: Some("get".into()),
                    }),
                    Access::Subresource { .. } => None,
                },
                resource_attributes: match access {
                    Access::NonResource(_) => None,
                    Access::Subresource {
                        resource,
                        subresource,
                        name,
                    } => Some(ResourceAttributes {
                        resource: Some(resource.clone()),
                        subresource: Some(subresource.clone()),
                        name: Some(name.clone()),
                        verb: Some("get".into()),
                        ..Default::default()
                    }),
                },
            },
            ..Default::default()
        };
        let status = self.ask(&sar).await?.status.unwrap_or_default();
        Ok(if status.allowed {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(format!("{name} may not {}", access.describe()))
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

static GLOBAL: OnceLock<Arc<MetricsAuth>> = OnceLock::new();

/// Turns authentication of `/metrics` on for this process's listener (`--metrics-auth`); call
/// it before the listener starts. Later calls are ignored.
pub fn require(auth: MetricsAuth) {
    let _ = GLOBAL.set(Arc::new(auth));
}

/// The process's authenticator, when `/metrics` needs one.
pub fn required() -> Option<Arc<MetricsAuth>> {
    GLOBAL.get().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_scheme_with_a_token_is_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }

    #[tokio::test]
    async fn the_cache_of_allowed_tokens_is_bounded_and_forgets_them() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let auth = MetricsAuth::with_ttl(kube::Client::try_from(config).unwrap(), Duration::from_millis(200));
        for i in 0..(CACHE_MAX + 10) as u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            auth.remember(key);
        }
        assert_eq!(auth.lock().len(), CACHE_MAX);
        let newest = {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&((CACHE_MAX + 9) as u32).to_be_bytes());
            k
        };
        assert!(auth.cached(&newest));
        assert!(!auth.cached(&[0u8; 32]), "the oldest went first");
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            !auth.cached(&newest),
            "an allowed token is asked about again after the TTL"
        );
    }
}
