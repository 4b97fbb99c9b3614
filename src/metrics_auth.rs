//! Authentication of `/metrics` (`--metrics-auth`), as controller-runtime's secure metrics and
//! kube-rbac-proxy do it: the request's `Authorization: Bearer <token>` is checked with a
//! `TokenReview`, then the token's user with a `SubjectAccessReview` for `get` on the
//! non-resource URL `/metrics`. Allowed tokens are remembered for a short while (a bounded
//! cache keyed by the token's SHA-256), so a scraper costs two apiserver calls a minute at most.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
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

/// The answer to a `/metrics` request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token is valid and its user may `get /metrics`.
    Allowed,
    /// No bearer token, or one the apiserver does not accept: 401.
    Unauthenticated(String),
    /// A valid token whose user may not `get /metrics`: 403.
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

    /// Checks the value of a request's `Authorization` header (`None` when it has none).
    pub async fn check(&self, authorization: Option<&str>) -> Result<Verdict, Error> {
        let Some(token) = bearer(authorization) else {
            return Ok(Verdict::Unauthenticated("a bearer token is required".into()));
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if self.cached(&key) {
            return Ok(Verdict::Allowed);
        }
        let _permit = self.reviews.acquire().await.expect("the semaphore is never closed");
        // another request with the same token may have been allowed meanwhile
        if self.cached(&key) {
            return Ok(Verdict::Allowed);
        }
        let verdict = tokio::time::timeout(REVIEW_TIMEOUT, self.review(token))
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

    async fn review(&self, token: &str) -> Result<Verdict, Error> {
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
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(METRICS_PATH.into()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let status = self.ask(&sar).await?.status.unwrap_or_default();
        Ok(if status.allowed {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(format!("{name} may not get {METRICS_PATH}"))
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
