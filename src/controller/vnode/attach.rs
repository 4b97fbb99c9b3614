//! `kubectl attach`: the Pod container's console (Proxmox `termproxy` + `vncwebsocket`; with
//! `cmode: console` the entrypoint's stdin, stdout and stderr) joined to the caller's
//! websocket.
//!
//! The apiserver proxies `pods/attach` to the kubelet endpoint as it came, upgrade included;
//! kubectl (1.30 and later) asks for a websocket with the Kubernetes stream protocol
//! (`v5.channel.k8s.io`, or `v4.channel.k8s.io`): binary messages whose first byte is the
//! channel (0 stdin, 1 stdout, 2 stderr, 3 error: the final `Status`, 4 resize: `{"Width",
//! "Height"}`, 255 close of a channel, v5). The older SPDY/3.1 upgrade (kubectl before 1.30,
//! or its fallback) is not spoken: it answers 501 with what to use instead.
//!
//! A console is one terminal: stdout and stderr both come on channel 1, and what is typed is
//! echoed as a terminal does. Proxmox keeps no history: the caller sees what is printed from
//! now on (`kubectl logs` has what came before).

use super::logs::{target, text, Body, Caller, LogState};
use crate::controller::cluster::ClusterKey;
use futures::{SinkExt, StreamExt};
use hyper::{Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

/// The stream protocols spoken, best first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Whether `req` asks for a websocket.
pub fn wants_websocket<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The protocol to speak from the `Sec-WebSocket-Protocol` the caller offered.
pub fn choose_protocol(offered: &str) -> Option<&'static str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    PROTOCOLS.iter().copied().find(|p| offered.contains(p))
}

/// One message of the caller, as the console takes it.
#[derive(Debug, PartialEq, Eq)]
pub enum FromCaller {
    /// Bytes typed (channel 0).
    Input(Vec<u8>),
    /// The terminal's new size (channel 4): columns, rows.
    Resize(u16, u16),
    /// Nothing for the console (a closed channel, an unknown one).
    Nothing,
}

/// Reads one binary message of the stream protocol (pure).
pub fn parse(data: &[u8]) -> FromCaller {
    match data.split_first() {
        Some((0, rest)) if !rest.is_empty() => FromCaller::Input(rest.to_vec()),
        Some((4, rest)) => {
            let size: serde_json::Value = serde_json::from_slice(rest).unwrap_or_default();
            let dim = |k: &str| size[k].as_u64().map(|v| v.clamp(1, 1000) as u16);
            match (dim("Width"), dim("Height")) {
                (Some(w), Some(h)) => FromCaller::Resize(w, h),
                _ => FromCaller::Nothing,
            }
        }
        _ => FromCaller::Nothing,
    }
}

/// The final message: channel 3 with a `Status`.
fn status(ok: bool, message: &str) -> Message {
    let s = if ok {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        serde_json::json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"})
    };
    let mut out = vec![3u8];
    out.extend_from_slice(s.to_string().as_bytes());
    Message::binary(out)
}

/// Serves `GET /attach/{ns}/{pod}/{container}` with a websocket upgrade.
pub(super) async fn attach(
    state: LogState,
    req: Request<hyper::body::Incoming>,
    (ns, pod, container): (&str, &str, &str),
    caller: Caller,
) -> Response<Body> {
    let offered = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(protocol) = choose_protocol(&offered) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("attach speaks the websocket protocols {} only", PROTOCOLS.join(", ")),
        );
    };
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return text(StatusCode::BAD_REQUEST, "a websocket upgrade needs Sec-WebSocket-Key");
    };
    let t = match target(&state, &caller, ns, pod, container).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let query = req.uri().query().unwrap_or_default().to_string();
    // the apiserver names it `input` towards a kubelet (`stdin` in its own API)
    let stdin = url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| (k == "input" || k == "stdin") && (v == "true" || v == "1"));
    let Some(h) = state.clusters.get(&ClusterKey::named(t.cluster.clone())) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ProxmoxCluster {} is not connected", t.cluster),
        );
    };
    let console = match h.client.console(&t.node, t.vmid).await {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("cannot attach to the container's console: {e}"),
            )
        }
    };
    let Some(slot) = state.limits.follow(&t.uid) else {
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            format!("pod {pod} has as many console streams open as it may"),
        );
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(up) = on_upgrade.await else { return };
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(up), Role::Server, None)
                .await;
        bridge(ws, console, stdin).await;
    });
    let mut r = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = r.headers_mut();
    headers.remove("content-type");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    for (k, v) in [
        ("upgrade", "websocket".to_string()),
        ("connection", "Upgrade".to_string()),
        ("sec-websocket-accept", accept),
        ("sec-websocket-protocol", protocol.to_string()),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    r
}

/// Copies the console to channel 1 and the caller's input and size to the console, until
/// either side ends; the caller gets the final `Status`.
async fn bridge<S>(mut ws: tokio_tungstenite::WebSocketStream<S>, mut console: crate::pve::Console, stdin: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let end = loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(m)) if m.is_binary() => {
                    let r = match parse(&m.into_data()) {
                        FromCaller::Input(data) if stdin => console.send_input(&data).await,
                        FromCaller::Resize(w, h) => console.resize(w, h).await,
                        _ => Ok(()),
                    };
                    if let Err(e) = r {
                        break Some(e.to_string());
                    }
                }
                Some(Ok(m)) if m.is_close() => break None,
                Some(Ok(_)) => {}
                None | Some(Err(_)) => break None,
            },
            o = console.next_output() => match o {
                Ok(Some(bytes)) => {
                    let mut out = Vec::with_capacity(bytes.len() + 1);
                    out.push(1u8);
                    out.extend_from_slice(&bytes);
                    if ws.send(Message::binary(out)).await.is_err() {
                        break None;
                    }
                }
                // the container stopped: the console ended
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            },
        }
    };
    let _ = ws.send(status(end.is_none(), end.as_deref().unwrap_or_default())).await;
    let _ = ws.close(None).await;
    console.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_protocol_is_read_like_a_kubelet_does() {
        assert_eq!(choose_protocol("v5.channel.k8s.io"), Some("v5.channel.k8s.io"));
        assert_eq!(
            choose_protocol("channel.k8s.io, v4.channel.k8s.io"),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(choose_protocol("SPDY/3.1"), None);
        assert_eq!(parse(b"\x00ls\n"), FromCaller::Input(b"ls\n".to_vec()));
        assert_eq!(parse(b"\x04{\"Width\":120,\"Height\":40}"), FromCaller::Resize(120, 40));
        assert_eq!(parse(b"\xff\x00"), FromCaller::Nothing);
        assert_eq!(parse(b""), FromCaller::Nothing);
    }
}
