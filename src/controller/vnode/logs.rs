//! The kubelet endpoint of the virtual nodes: what the kube-apiserver calls for `kubectl logs`.
//!
//! A Pod's log is what its application printed: the console lines the operator keeps
//! ([`super::console`]), of the current run or, with `previous`, of the run before the last
//! restart. `follow` sends new lines until the run ends.
//!
//! Until the current run's console has a line (the container is being created, never started
//! or prints nothing, or the token lacks `VM.Console`), the log is the Proxmox task log of the container instead:
//! create, start, stop, in order, each line stamped with its task's start, and `follow` sends
//! the lines of new tasks as they come. That is where a failed pull or start explains itself.
//! `exec`, `attach` and `port-forward` answer 501 with what to do instead.

use super::limits::{FollowSlot, Limits};
use super::lines::{render, Line, LogQuery};
use super::translate::child_name;
use crate::controller::cluster::{ClusterKey, ClusterRegistry};
use crate::crd::LxcContainer;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// What the endpoint reads.
#[derive(Clone)]
pub struct LogState {
    /// Kubernetes client (the operator's).
    pub kube: kube::Client,
    /// The Proxmox connections.
    pub clusters: Arc<ClusterRegistry>,
    /// How often `follow` looks for new lines.
    pub follow_interval: Duration,
    /// With a client CA: callers without a client certificate it signed need a bearer token
    /// allowed `get nodes/proxy` of the Pod's Node (TokenReview + SubjectAccessReview).
    pub auth: Option<Arc<crate::metrics_auth::MetricsAuth>>,
    /// What the Pods' applications printed (none: task logs only).
    pub pod_logs: Option<Arc<super::console::PodLogs>>,
    /// The bounds of the endpoint's work.
    pub limits: Arc<Limits>,
}

/// The answer to a `follow` past [`Limits::follows_per_pod`].
fn too_many_follows(limits: &Limits, pod: &str) -> Response<Body> {
    text(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "pod {pod} has {} log streams (-f) open already, the most one Pod may have; close one",
            limits.follows_per_pod
        ),
    )
}

/// A response body.
pub(super) type Body = BoxBody<Bytes, Infallible>;

/// A plain-text answer.
pub(super) fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Where a Pod's container is in Proxmox.
pub(super) struct Target {
    /// The Pod's uid (console logs belong to it).
    pub(super) uid: String,
    /// Its `ProxmoxCluster`.
    pub(super) cluster: String,
    /// Its Proxmox node.
    pub(super) node: String,
    /// Its vmid.
    pub(super) vmid: u32,
    /// When the Pod's `LxcContainer` was made (epoch seconds): tasks that started before are
    /// an earlier owner's of the vmid, never shown.
    made: i64,
}

/// The Pod's container in Proxmox, once `caller` may read it (the Pod's Node decides).
pub(super) async fn target(
    state: &LogState,
    caller: &Caller,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Target, Response<Body>> {
    let pods: Api<Pod> = Api::namespaced(state.kube.clone(), ns);
    // nothing is told about a Pod (not even that it does not exist) before the caller is
    // known to be allowed: without the Pod's Node, `nodes/proxy` of every Node decides
    let hidden = |answer: Response<Body>| async move {
        match refused(state, caller, "").await {
            Some(r) => r,
            None => answer,
        }
    };
    let p = match pods.get_opt(pod).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(hidden(text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found"))).await),
        Err(e) => {
            let answer = text(StatusCode::BAD_GATEWAY, format!("reading pod {ns}/{pod}: {e}"));
            return Err(hidden(answer).await);
        }
    };
    let node_name = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    if let Some(r) = refused(state, caller, &node_name).await {
        return Err(r);
    }
    let names: Vec<String> = p
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    if !names.iter().any(|n| n == container) {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!("container {container} is not valid for pod {pod}"),
        ));
    }
    let children: Api<LxcContainer> = Api::namespaced(state.kube.clone(), ns);
    let child = children.get_opt(&child_name(pod)).await.ok().flatten();
    let made = child
        .as_ref()
        .and_then(|c| c.metadata.creation_timestamp.as_ref())
        .map_or(0, |t| t.0.as_second());
    let status = child.and_then(|c| c.status);
    match status
        .as_ref()
        .and_then(|s| Some((s.cluster.clone()?, s.node.clone()?, s.vmid?)))
    {
        Some((cluster, node, vmid)) => Ok(Target {
            uid: p.metadata.uid.clone().unwrap_or_default(),
            cluster,
            node,
            vmid,
            made,
        }),
        None => Err(text(
            StatusCode::BAD_REQUEST,
            format!("container {container} in pod {pod} is waiting to start: ContainerCreating"),
        )),
    }
}

/// What was sent of one task's log.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// Lines sent.
    lines: usize,
    /// The task had ended when they were read: its log does not grow any more.
    finished: bool,
}

/// The lines of the container's Proxmox tasks not sent yet (per `seen`; all on the first read),
/// oldest task first.
async fn read_lines(state: &LogState, t: &Target, seen: &mut HashMap<String, Seen>) -> Result<Vec<Line>, String> {
    let Some(h) = state.clusters.get(&ClusterKey::named(t.cluster.clone())) else {
        return Err(format!("ProxmoxCluster {} is not connected", t.cluster));
    };
    let mut tasks = h
        .client
        .guest_tasks(&t.node, t.vmid, 100)
        .await
        .map_err(|e| format!("reading the Proxmox tasks of CT {}: {e}", t.vmid))?;
    // a vmid is handed out again: only the tasks of this Pod's container (started after its
    // LxcContainer was made) are its log
    tasks.retain(|x| x.starttime.unwrap_or(0) >= t.made);
    tasks.sort_by_key(|x| x.starttime.unwrap_or(0));
    let mut out = Vec::new();
    for task in tasks {
        let Some(upid) = task.upid.as_deref().and_then(|u| u.parse::<crate::pve::Upid>().ok()) else {
            continue;
        };
        let at = task.starttime.unwrap_or(0);
        let before = seen.get(upid.as_str()).copied();
        if before.is_some_and(|b| b.finished) {
            // every line of a finished task was sent already
            continue;
        }
        let lines = h.client.task_log_tail(&upid, 1000).await.unwrap_or_default();
        let done = match before {
            Some(b) => b.lines,
            None => {
                out.push(Line {
                    at,
                    nanos: 0,
                    text: format!(
                        "[proxmox task {} on {}]",
                        task.task_type.as_deref().unwrap_or("?"),
                        t.node
                    ),
                });
                0
            }
        };
        out.extend(lines.iter().skip(done).map(|l| Line {
            at,
            nanos: 0,
            text: l.clone(),
        }));
        seen.insert(
            upid.as_str().to_string(),
            Seen {
                lines: lines.len().max(done),
                // the task list names an exit status only once a task has ended
                finished: task.status.is_some(),
            },
        );
    }
    Ok(out)
}

/// Who asks.
pub(super) struct Caller {
    /// Whether it showed a client certificate the client CA signed (the kube-apiserver).
    pub(super) client_cert: bool,
    /// Its `Authorization` header.
    pub(super) authorization: Option<String>,
}

/// Whether `caller` may read logs of a Pod on `node`: `None` if so, else the refusal.
async fn refused(state: &LogState, caller: &Caller, node: &str) -> Option<Response<Body>> {
    let auth = state.auth.as_ref().filter(|_| !caller.client_cert)?;
    let access = crate::metrics_auth::Access::node_proxy(node);
    match auth.check_access(caller.authorization.as_deref(), &access).await {
        Ok(crate::metrics_auth::Verdict::Allowed) => None,
        Ok(crate::metrics_auth::Verdict::Unauthenticated(why)) => Some(text(StatusCode::UNAUTHORIZED, why)),
        Ok(crate::metrics_auth::Verdict::Forbidden(why)) => Some(text(StatusCode::FORBIDDEN, why)),
        Err(e) => Some(text(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// Answers `GET /containerLogs/{ns}/{pod}/{container}`.
pub(super) async fn logs(
    state: LogState,
    ns: &str,
    pod: &str,
    container: &str,
    q: LogQuery,
    caller: Caller,
) -> Response<Body> {
    // the Pod's Node decides; before it is known, any caller may learn only that it is not found
    if state.auth.is_some() && !caller.client_cert && caller.authorization.is_none() {
        return text(
            StatusCode::UNAUTHORIZED,
            "a client certificate or a bearer token is required",
        );
    }
    let t = match target(&state, &caller, ns, pod, container).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    // a stream holds a slot until it ends (not for `previous`, which never streams)
    let slot = match q.follow && !q.previous {
        true => match state.limits.follow(&t.uid) {
            Some(s) => Some(s),
            None => return too_many_follows(&state.limits, pod),
        },
        false => None,
    };
    // the app's lines once its console has any; until then the task log explains
    if let Some(pod_logs) = state.pod_logs.clone() {
        let run = pod_logs.read(&t.uid, t.vmid, q.previous, 0);
        if let Some(run) = run.filter(|r| q.previous || !r.lines.is_empty()) {
            return console_logs(pod_logs, t, run, q, slot);
        }
    }
    if q.previous {
        return text(
            StatusCode::BAD_REQUEST,
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
        );
    }
    let mut seen = HashMap::new();
    let first = match read_lines(&state, &t, &mut seen).await {
        Ok(l) => l,
        Err(e) => return text(StatusCode::BAD_GATEWAY, e),
    };
    let body = render(&first, &q);
    if !q.follow {
        return text(StatusCode::OK, body);
    }
    let (mut out, rx) = Follow::new(&q);
    tokio::spawn(async move {
        let _slot = slot;
        if !out.first(body).await {
            return;
        }
        loop {
            tokio::time::sleep(state.follow_interval).await;
            let Ok(new) = read_lines(&state, &t, &mut seen).await else {
                continue;
            };
            if new.is_empty() {
                if out.closed() {
                    return;
                }
                continue;
            }
            if !out.lines(&new).await {
                return;
            }
        }
    });
    streamed(rx)
}

/// One followed log stream (`-f`): the first answer, then the new lines as they come, rendered
/// without a tail, since or limit of their own, and cut where `--limit-bytes` ends (on a
/// character boundary).
struct Follow {
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    q: LogQuery,
    limit: Option<usize>,
    sent: usize,
}

impl Follow {
    fn new(q: &LogQuery) -> (Follow, tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let q_new = LogQuery {
            tail_lines: None,
            since: None,
            limit_bytes: None,
            ..q.clone()
        };
        let out = Follow {
            tx,
            q: q_new,
            limit: q.limit_bytes,
            sent: 0,
        };
        (out, rx)
    }

    /// Sends the first answer (already rendered with the request's own tail, since and limit);
    /// false when the client is gone.
    async fn first(&mut self, body: String) -> bool {
        self.sent = body.len();
        self.tx.send(Ok(Frame::data(Bytes::from(body)))).await.is_ok()
    }

    /// Sends new lines; false when the stream is over (the client is gone or the limit reached).
    async fn lines(&mut self, lines: &[Line]) -> bool {
        let mut chunk = render(lines, &self.q);
        if let Some(max) = self.limit {
            if self.sent >= max {
                return false;
            }
            let mut cut = chunk.len().min(max - self.sent);
            while !chunk.is_char_boundary(cut) {
                cut -= 1;
            }
            chunk.truncate(cut);
        }
        self.sent += chunk.len();
        self.tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_ok()
    }

    /// Whether the client went away.
    fn closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A streamed `text/plain` response from the chunks `rx` receives.
fn streamed(rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The application's lines of one run; with `follow` (not for `previous`), new lines until
/// the run ends, as a kubelet ends the stream when the container exits.
fn console_logs(
    pod_logs: Arc<super::console::PodLogs>,
    t: Target,
    run: super::console::RunLines,
    q: LogQuery,
    slot: Option<FollowSlot>,
) -> Response<Body> {
    let body = render(&run.lines, &q);
    if !q.follow || q.previous || !run.open {
        return text(StatusCode::OK, body);
    }
    let (mut out, rx) = Follow::new(&q);
    tokio::spawn(async move {
        let _slot = slot;
        let mut seq = run.seq;
        if !out.first(body).await {
            return;
        }
        loop {
            let changed = pod_logs.changed.notified();
            let Some(now) = pod_logs.read(&t.uid, t.vmid, false, seq).filter(|r| r.pid == run.pid) else {
                return;
            };
            seq = now.seq;
            if !now.lines.is_empty() && !out.lines(&now.lines).await {
                return;
            }
            if !now.open {
                return;
            }
            // woken by new lines; the timeout notices a client that went away
            if tokio::time::timeout(Duration::from_secs(5), changed).await.is_err() && out.closed() {
                return;
            }
        }
    });
    streamed(rx)
}

#[cfg(test)]
mod tests {
    use super::super::kubelet::{serve, tls_config};
    use super::super::lines::parse_query;
    use super::*;

    fn lines() -> Vec<Line> {
        (0..5)
            .map(|i| Line {
                at: 1_000 + i * 10,
                nanos: 0,
                text: format!("line {i}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_followed_stream_stops_at_limit_bytes_on_a_character_boundary() {
        let q = LogQuery {
            follow: true,
            limit_bytes: Some(5),
            ..Default::default()
        };
        let (mut out, mut rx) = Follow::new(&q);
        assert!(out.first("ab\n".into()).await);
        let wide = |text: &str| Line {
            at: 1,
            nanos: 0,
            text: text.into(),
        };
        // 2 bytes left: the first "é" (2 bytes) fits; the rest is not sent
        assert!(out.lines(&[wide("éé")]).await);
        assert!(!out.lines(&[wide("more")]).await, "the limit is reached");
        let (mut half, _half_rx) = Follow::new(&LogQuery {
            limit_bytes: Some(6),
            ..q.clone()
        });
        half.sent = 3;
        // 3 bytes left: cutting there would split the second "é": only the first goes
        assert!(half.lines(&[wide("éé")]).await);
        assert_eq!(half.sent, 5);
        let mut got = Vec::new();
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            got.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(String::from_utf8(got).unwrap(), "ab\né");
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_header_timeout_and_one_past_the_bound_at_once() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kube = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let state = LogState {
            kube,
            clusters: Arc::new(ClusterRegistry::default()),
            follow_interval: Duration::from_secs(1),
            auth: None,
            pod_logs: None,
            limits: Arc::new(Limits::new(1, 1, Duration::from_millis(400), Duration::from_secs(1))),
        };
        let tls = tls_config(vec!["localhost".into()], None).unwrap();
        tokio::spawn(serve(listener, tls, state));
        let mut buf = [0u8; 16];
        let closed =
            |r: Result<std::io::Result<usize>, tokio::time::error::Elapsed>| matches!(r, Ok(Ok(0)) | Ok(Err(_)));
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(1), second.read(&mut buf)).await;
        assert!(closed(r), "the connection past the bound is closed at once");
        let r = tokio::time::timeout(Duration::from_millis(100), silent.read(&mut buf)).await;
        assert!(r.is_err(), "the first one is still served");
        let r = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
        assert!(
            closed(r),
            "a caller that sends nothing is closed after the header timeout"
        );
        // its place is free again
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(150), third.read(&mut buf)).await;
        assert!(r.is_err(), "served");
    }

    #[test]
    fn tail_lines_keeps_the_last_ones() {
        let q = parse_query("tailLines=2", 0).unwrap();
        assert_eq!(render(&lines(), &q), "line 3\nline 4\n");
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let q = parse_query("limitBytes=9", 0).unwrap();
        assert_eq!(render(&lines(), &q), "line 0\nli");
    }

    #[test]
    fn timestamps_prefix_each_line_with_its_time() {
        let q = parse_query("timestamps=true&tailLines=1", 0).unwrap();
        assert_eq!(render(&lines(), &q), "1970-01-01T00:17:20.000000000Z line 4\n");
    }

    #[test]
    fn since_seconds_drops_older_lines_and_both_since_forms_are_refused() {
        let q = parse_query("sinceSeconds=15", 1_045).unwrap();
        assert_eq!(render(&lines(), &q), "line 3\nline 4\n");
        let err = parse_query("sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z", 0).unwrap_err();
        assert!(err.contains("at most one"), "{err}");
    }
}
