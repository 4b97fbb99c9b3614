//! Signed-in users: a server-side map from a random session id (the cookie's value) to the
//! user's Kubernetes client and CSRF token. The token never goes back to the browser.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many sessions at once: signing in beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 10_000;

/// Name of the session cookie.
pub const COOKIE: &str = "plo_ui_session";

/// One signed-in user.
pub struct Session {
    /// The session id (the cookie's value).
    pub id: String,
    /// Kubernetes client authenticating with the user's own bearer token.
    pub client: kube::Client,
    /// CSRF token every POST of this session must carry.
    pub csrf: String,
    /// Namespace given at sign-in (lists default to it; all namespaces when empty).
    pub namespace: String,
    /// The session ends at this instant whatever the activity.
    pub expires: Instant,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Without a request for this long, a session ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, active or not.
    pub absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(8 * 3600),
        }
    }
}

struct Entry {
    session: Arc<Session>,
    last_seen: Instant,
}

/// The sessions of one UI listener.
pub struct Sessions {
    lifetimes: Lifetimes,
    max: usize,
    map: Mutex<HashMap<String, Entry>>,
}

/// 32 random bytes, hex-encoded (256 bits: unguessable).
pub fn random_token() -> String {
    let mut buf = [0u8; 32];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// An empty store.
    pub fn new(lifetimes: Lifetimes) -> Sessions {
        Sessions::with_limit(lifetimes, MAX_SESSIONS)
    }

    /// An empty store that keeps at most `max` sessions.
    pub fn with_limit(lifetimes: Lifetimes, max: usize) -> Sessions {
        Sessions {
            lifetimes,
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `client` at `now`; returns it (its id goes into the cookie).
    pub fn create_at(&self, client: kube::Client, namespace: String, now: Instant) -> Arc<Session> {
        let session = Arc::new(Session {
            id: random_token(),
            client,
            csrf: random_token(),
            namespace,
            expires: now + self.lifetimes.absolute,
        });
        let mut map = self.map();
        map.retain(|_, e| self.alive(e, now));
        if map.len() >= self.max {
            if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last_seen).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(
            session.id.clone(),
            Entry {
                session: session.clone(),
                last_seen: now,
            },
        );
        session
    }

    fn alive(&self, e: &Entry, now: Instant) -> bool {
        now < e.session.expires && now.duration_since(e.last_seen) < self.lifetimes.idle
    }

    /// The live session with this id at `now` (and marks it used), dropping it when expired.
    pub fn get_at(&self, id: &str, now: Instant) -> Option<Arc<Session>> {
        let mut map = self.map();
        let entry = map.get_mut(id)?;
        if !self.alive(entry, now) {
            map.remove(id);
            return None;
        }
        entry.last_seen = now;
        Some(entry.session.clone())
    }

    /// [`Sessions::get_at`] now.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.get_at(id, Instant::now())
    }

    /// Whether the session still exists (without marking it used).
    pub fn contains(&self, id: &str) -> bool {
        let now = Instant::now();
        self.map().get(id).is_some_and(|e| self.alive(e, now))
    }

    /// Ends a session (sign-out).
    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` header that stores session `id` (HttpOnly, SameSite=Strict, `Secure` behind
/// https), or removes it when `id` is `None`.
pub fn set_cookie(id: Option<&str>, secure: bool, max_age: Duration) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> kube::Client {
        let (svc, _handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        kube::Client::new(svc, "default")
    }

    #[tokio::test]
    async fn a_session_ends_after_its_idle_time_and_after_its_absolute_lifetime() {
        let sessions = Sessions::new(Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
        });
        let t0 = Instant::now();
        let s = sessions.create_at(client(), String::new(), t0);
        assert!(sessions.get_at(&s.id, t0 + Duration::from_secs(59)).is_some());
        assert!(
            sessions.get_at(&s.id, t0 + Duration::from_secs(118)).is_some(),
            "use extends it"
        );
        assert!(
            sessions.get_at(&s.id, t0 + Duration::from_secs(179)).is_none(),
            "idle too long"
        );
        let s = sessions.create_at(client(), String::new(), t0);
        for m in 1..=4 {
            assert!(sessions.get_at(&s.id, t0 + Duration::from_secs(m * 59)).is_some());
        }
        assert!(
            sessions.get_at(&s.id, t0 + Duration::from_secs(300)).is_none(),
            "absolute end"
        );
    }

    #[tokio::test]
    async fn session_ids_and_csrf_tokens_are_random_and_distinct() {
        let sessions = Sessions::new(Lifetimes::default());
        let a = sessions.create_at(client(), String::new(), Instant::now());
        let b = sessions.create_at(client(), String::new(), Instant::now());
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        assert_ne!(a.id, a.csrf);
        sessions.remove(&a.id);
        assert!(sessions.get(&a.id).is_none());
        assert!(sessions.get(&b.id).is_some());
    }

    #[tokio::test]
    async fn the_number_of_sessions_is_bounded_and_the_least_recently_used_goes_first() {
        let sessions = Sessions::with_limit(Lifetimes::default(), 50);
        let t0 = Instant::now();
        let first = sessions.create_at(client(), String::new(), t0);
        let second = sessions.create_at(client(), String::new(), t0 + Duration::from_millis(1));
        assert!(sessions.get_at(&first.id, t0 + Duration::from_millis(2)).is_some());
        for i in 2..50 {
            sessions.create_at(client(), String::new(), t0 + Duration::from_millis(2 + i as u64));
        }
        assert_eq!(sessions.map().len(), 50);
        sessions.create_at(client(), String::new(), t0 + Duration::from_secs(60));
        assert_eq!(sessions.map().len(), 50);
        let now = t0 + Duration::from_secs(61);
        assert!(
            sessions.get_at(&second.id, now).is_none(),
            "the least recently used ended"
        );
        assert!(sessions.get_at(&first.id, now).is_some(), "a recently used one stays");
    }

    #[test]
    fn csrf_tokens_are_compared_whole() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
    }

    #[test]
    fn the_session_cookie_is_http_only_and_same_site_strict() {
        let c = set_cookie(Some("x"), false, Duration::from_secs(60));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(set_cookie(Some("x"), true, Duration::from_secs(60)).ends_with("; Secure"));
        assert_eq!(cookie_value("a=1; plo_ui_session=abc; b=2", COOKIE), Some("abc"));
        assert_eq!(cookie_value("a=1", COOKIE), None);
    }
}
