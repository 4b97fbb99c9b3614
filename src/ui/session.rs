//! Signed-in users: a server-side map from a random session id (the cookie's value) to the
//! user's Kubernetes client and CSRF token. The token never goes back to the browser.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many sessions at once: beyond it a sign-in is refused (nobody else's session
/// is ended to make room).
pub const MAX_SESSIONS: usize = 10_000;

/// At most this many sessions per principal (the Kubernetes user a token authenticates as):
/// a further sign-in of the same principal ends that principal's least recently used one.
pub const MAX_SESSIONS_PER_PRINCIPAL: usize = 16;

/// At most this many live streams (`/ui/events`, a detail page's stream) per session at once.
pub const MAX_STREAMS_PER_SESSION: usize = 4;

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
    /// Who signed in: the Kubernetes user name (or, when the apiserver cannot say, the token's
    /// subject), for the audit log and the per-principal session bound.
    pub principal: String,
    /// The message the next page shows (the outcome of an action), taken once.
    flash: Mutex<Option<Flash>>,
    /// Access reviews of this session, by namespace, with when they were made.
    access: Mutex<HashMap<String, (Instant, super::access::Access)>>,
    /// Live streams open now.
    streams: AtomicUsize,
}

/// A one-time message for the next page: the confirmation of an action, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Whether it tells of a failure.
    pub error: bool,
    /// The sentence.
    pub text: String,
}

/// An open live stream of a session; dropping it frees its place.
pub struct StreamSlot(Arc<Session>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Session {
    /// Sets the message the next page shows.
    pub fn flash(&self, error: bool, text: impl Into<String>) {
        *lock(&self.flash) = Some(Flash {
            error,
            text: text.into(),
        });
    }

    /// Takes the message for this page (the next one shows none).
    pub fn take_flash(&self) -> Option<Flash> {
        lock(&self.flash).take()
    }

    /// The cached access review of namespace `ns` when younger than `max_age`.
    pub fn cached_access(&self, ns: &str, max_age: Duration) -> Option<super::access::Access> {
        lock(&self.access)
            .get(ns)
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, a)| *a)
    }

    /// Remembers the access review of namespace `ns` (at most 64 namespaces are kept).
    pub fn cache_access(&self, ns: &str, access: super::access::Access) {
        let mut map = lock(&self.access);
        if map.len() >= 64 {
            map.clear();
        }
        map.insert(ns.to_string(), (Instant::now(), access));
    }

    /// A place for one more live stream, or `None` when the session has
    /// [`MAX_STREAMS_PER_SESSION`] open.
    pub fn open_stream(self: &Arc<Self>) -> Option<StreamSlot> {
        let before = self.streams.fetch_add(1, Ordering::SeqCst);
        let slot = StreamSlot(self.clone());
        (before < MAX_STREAMS_PER_SESSION).then_some(slot)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The store is full: a sign-in is refused rather than ending another user's session.
#[derive(Debug, thiserror::Error)]
#[error("the UI has {max} sessions open, its limit: try again when some have ended")]
pub struct Full {
    /// The limit.
    pub max: usize,
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
    per_principal: usize,
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

    /// An empty store that keeps at most `max` sessions, [`MAX_SESSIONS_PER_PRINCIPAL`] of
    /// each principal.
    pub fn with_limit(lifetimes: Lifetimes, max: usize) -> Sessions {
        Sessions {
            lifetimes,
            max: max.max(1),
            per_principal: MAX_SESSIONS_PER_PRINCIPAL,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session of `principal` for `client` at `now`; returns it (its id goes into the
    /// cookie). A principal with [`MAX_SESSIONS_PER_PRINCIPAL`] sessions loses its own least
    /// recently used one; a full store refuses the sign-in.
    pub fn create_at(
        &self,
        client: kube::Client,
        namespace: String,
        principal: String,
        now: Instant,
    ) -> Result<Arc<Session>, Full> {
        let session = Arc::new(Session {
            id: random_token(),
            client,
            csrf: random_token(),
            namespace,
            expires: now + self.lifetimes.absolute,
            principal,
            flash: Mutex::new(None),
            access: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
        });
        let mut map = self.map();
        map.retain(|_, e| self.alive(e, now));
        let own: Vec<(&String, Instant)> = map
            .iter()
            .filter(|(_, e)| e.session.principal == session.principal)
            .map(|(k, e)| (k, e.last_seen))
            .collect();
        if own.len() >= self.per_principal {
            if let Some(oldest) = own.iter().min_by_key(|(_, seen)| *seen).map(|(k, _)| (*k).clone()) {
                map.remove(&oldest);
            }
        }
        if map.len() >= self.max {
            return Err(Full { max: self.max });
        }
        map.insert(
            session.id.clone(),
            Entry {
                session: session.clone(),
                last_seen: now,
            },
        );
        Ok(session)
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
        let s = sessions.create_at(client(), String::new(), "u".into(), t0).unwrap();
        assert!(sessions.get_at(&s.id, t0 + Duration::from_secs(59)).is_some());
        assert!(
            sessions.get_at(&s.id, t0 + Duration::from_secs(118)).is_some(),
            "use extends it"
        );
        assert!(
            sessions.get_at(&s.id, t0 + Duration::from_secs(179)).is_none(),
            "idle too long"
        );
        let s = sessions.create_at(client(), String::new(), "u".into(), t0).unwrap();
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
        let a = sessions
            .create_at(client(), String::new(), "u".into(), Instant::now())
            .unwrap();
        let b = sessions
            .create_at(client(), String::new(), "u".into(), Instant::now())
            .unwrap();
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        assert_ne!(a.id, a.csrf);
        sessions.remove(&a.id);
        assert!(sessions.get(&a.id).is_none());
        assert!(sessions.get(&b.id).is_some());
    }

    #[tokio::test]
    async fn a_full_session_store_refuses_a_sign_in_rather_than_ending_another_users_session() {
        let sessions = Sessions::with_limit(Lifetimes::default(), 50);
        let t0 = Instant::now();
        let first = sessions
            .create_at(client(), String::new(), "user-0".into(), t0)
            .unwrap();
        for i in 1..50 {
            let at = t0 + Duration::from_millis(i);
            sessions
                .create_at(client(), String::new(), format!("user-{i}"), at)
                .unwrap();
        }
        let refused = sessions.create_at(client(), String::new(), "user-50".into(), t0 + Duration::from_secs(1));
        assert!(refused.is_err(), "full: the sign-in is refused");
        assert_eq!(sessions.map().len(), 50);
        assert!(sessions.get(&first.id).is_some(), "nobody's session ended");
    }

    #[tokio::test]
    async fn one_principal_signing_in_again_and_again_cannot_end_another_users_session() {
        let sessions = Sessions::new(Lifetimes::default());
        let t0 = Instant::now();
        let admin = sessions.create_at(client(), String::new(), "admin".into(), t0).unwrap();
        let mut own = Vec::new();
        for i in 0..(MAX_SESSIONS as u64 + 1) {
            let at = t0 + Duration::from_micros(i + 1);
            own.push(sessions.create_at(client(), String::new(), "system:serviceaccount:x:pod".into(), at));
        }
        assert!(
            own.iter().all(Result::is_ok),
            "the principal's own oldest sessions make room"
        );
        assert!(sessions.get(&admin.id).is_some(), "the admin stays signed in");
        assert_eq!(sessions.map().len(), 1 + MAX_SESSIONS_PER_PRINCIPAL);
        let newest = own.last().unwrap().as_ref().unwrap();
        assert!(sessions.get(&newest.id).is_some());
        assert!(sessions.get(&own[0].as_ref().unwrap().id).is_none(), "its oldest ended");
    }

    #[tokio::test]
    async fn a_session_holds_a_bounded_number_of_live_streams() {
        let sessions = Sessions::new(Lifetimes::default());
        let s = sessions
            .create_at(client(), String::new(), "u".into(), Instant::now())
            .unwrap();
        let open: Vec<_> = (0..MAX_STREAMS_PER_SESSION).map(|_| s.open_stream().unwrap()).collect();
        assert!(s.open_stream().is_none(), "one more is refused");
        drop(open);
        assert!(s.open_stream().is_some(), "closed streams free their places");
    }

    #[tokio::test]
    async fn a_flash_message_is_shown_once() {
        let sessions = Sessions::new(Lifetimes::default());
        let s = sessions
            .create_at(client(), String::new(), "u".into(), Instant::now())
            .unwrap();
        s.flash(false, "Stop requested");
        assert_eq!(s.take_flash().unwrap().text, "Stop requested");
        assert!(s.take_flash().is_none());
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
