//! A container's console: `POST …/lxc/{vmid}/termproxy`, then `GET …/vncwebsocket` as a
//! websocket, spoken in termproxy's protocol.
//!
//! The protocol (proxmox/pve-xtermjs: `README`, `termproxy/src/main.rs`, and the browser side
//! in `src/www/main.js`): the client sends `<user>:<ticket>\n` first and termproxy answers `OK`
//! once the ticket is good for the container's path and `VM.Console`; after that the client
//! sends `0:<byte length>:<data>` (input), `1:<cols>:<rows>:` (resize) and `2` (ping: termproxy
//! drops a connection idle for 5 minutes, the browser pings every 30 s), and the server sends
//! the terminal's raw bytes. The websocket speaks the `binary` subprotocol. With `cmode:
//! console` the terminal is the container's `/dev/console`: its entrypoint's stdout/stderr.
//!
//! The connection goes to the endpoint the client uses, with the client's TLS settings
//! (verification or fingerprint pinning) and credentials.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::client::encode_segment;
use super::{Client, Error, Method};

/// What `termproxy` answers.
#[derive(Clone, Deserialize)]
pub struct TermProxy {
    /// The user the ticket is for (the token's id with a token).
    pub user: String,
    /// The VNC ticket (valid for 40 s).
    pub ticket: String,
    /// The termproxy's port on the node (5900-5999).
    #[serde(deserialize_with = "super::de::u64_lenient")]
    pub port: u64,
    /// The `vncproxy` task that runs the termproxy.
    pub upid: String,
}

impl std::fmt::Debug for TermProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermProxy")
            .field("user", &self.user)
            .field("ticket", &"<redacted>")
            .field("port", &self.port)
            .field("upid", &self.upid)
            .finish()
    }
}

/// Why a console could not be opened or ended.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The `termproxy` call failed (`VM.Console` missing, no such container...).
    #[error("termproxy for CT {vmid}: {source}")]
    TermProxy {
        /// The container.
        vmid: u32,
        /// The API error.
        #[source]
        source: Error,
    },
    /// The TCP or TLS connection to the endpoint failed.
    #[error("console of CT {vmid}: connecting to {endpoint}: {message}")]
    Connect {
        /// The container.
        vmid: u32,
        /// The endpoint base URL.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The websocket upgrade was refused (a wrong ticket, no termproxy listening...).
    #[error("console of CT {vmid}: websocket refused: {message}")]
    Upgrade {
        /// The container.
        vmid: u32,
        /// The HTTP status or handshake error.
        message: String,
    },
    /// termproxy did not answer `OK` to the ticket line (closed instead).
    #[error("console of CT {vmid}: termproxy refused the ticket")]
    Refused {
        /// The container.
        vmid: u32,
    },
    /// The connection failed after it was open.
    #[error("console of CT {vmid}: {message}")]
    Stream {
        /// The container.
        vmid: u32,
        /// What failed.
        message: String,
    },
}

/// Input for the terminal (`0:LEN:DATA`; LEN in bytes).
pub fn encode_input(data: &[u8]) -> Vec<u8> {
    let mut v = format!("0:{}:", data.len()).into_bytes();
    v.extend_from_slice(data);
    v
}

/// A terminal size change (`1:COLS:ROWS:`).
pub fn encode_resize(cols: u16, rows: u16) -> Vec<u8> {
    format!("1:{cols}:{rows}:").into_bytes()
}

/// A keep-alive (`2`).
pub const PING: &[u8] = b"2";

/// How often [`Console::next_output`] pings while no output comes (the browser's interval).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

type Stream = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// An open console: output as it comes, input, resize.
pub struct Console {
    vmid: u32,
    ws: Stream,
    /// Output that came with `OK` in the same message.
    pending: Option<Bytes>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("vmid", &self.vmid)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `POST /nodes/{node}/lxc/{vmid}/termproxy` (needs `VM.Console` on `/vms/{vmid}`).
    pub async fn termproxy(&self, node: &str, vmid: u32) -> Result<TermProxy, Error> {
        let path = format!("/nodes/{}/lxc/{vmid}/termproxy", encode_segment(node));
        self.request(Method::POST, &path, &[]).await
    }

    /// Opens CT `vmid`'s console: termproxy, the websocket, the ticket line and its `OK`.
    pub async fn console(&self, node: &str, vmid: u32) -> Result<Console, ConsoleError> {
        let proxy = self
            .termproxy(node, vmid)
            .await
            .map_err(|source| ConsoleError::TermProxy { vmid, source })?;
        self.open_console(node, vmid, &proxy).await
    }

    /// Joins the termproxy `proxy` (from [`Client::termproxy`]) through `vncwebsocket`.
    pub async fn open_console(&self, node: &str, vmid: u32, proxy: &TermProxy) -> Result<Console, ConsoleError> {
        let (base, tls, timeout) = self.console_transport();
        let conn = |message: String| ConsoleError::Connect {
            vmid,
            endpoint: base.clone(),
            message,
        };
        let url = url::Url::parse(&base).map_err(|e| conn(e.to_string()))?;
        let host = url.host_str().ok_or_else(|| conn("no host".into()))?.to_string();
        let port = url.port_or_known_default().unwrap_or(8006);
        let mut ws_url = url.clone();
        ws_url
            .set_scheme("wss")
            .map_err(|_| conn("cannot make a wss URL".into()))?;
        ws_url.set_path(&format!(
            "{}/nodes/{}/lxc/{vmid}/vncwebsocket",
            url.path().trim_end_matches('/'),
            encode_segment(node)
        ));
        ws_url
            .query_pairs_mut()
            .append_pair("port", &proxy.port.to_string())
            .append_pair("vncticket", &proxy.ticket);
        let mut req = ws_url.as_str().into_client_request().map_err(|e| conn(e.to_string()))?;
        let (headers, _) = self
            .auth_headers(&Method::GET, None)
            .await
            .map_err(|source| ConsoleError::TermProxy { vmid, source })?;
        req.headers_mut().extend(headers);
        req.headers_mut().insert(
            "sec-websocket-protocol",
            hyper::header::HeaderValue::from_static("binary"),
        );
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| conn(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| conn(e.to_string()))?;
            tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| conn(format!("TLS: {e}")))
        };
        let tls_stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| conn("timed out".into()))??;
        let (ws, _) = tokio_tungstenite::client_async(req, tls_stream)
            .await
            .map_err(|e| ConsoleError::Upgrade {
                vmid,
                message: e.to_string(),
            })?;
        let mut c = Console {
            vmid,
            ws,
            pending: None,
        };
        c.login(&proxy.user, &proxy.ticket, timeout).await?;
        Ok(c)
    }
}

impl Console {
    fn stream_err(&self, e: impl std::fmt::Display) -> ConsoleError {
        ConsoleError::Stream {
            vmid: self.vmid,
            message: e.to_string(),
        }
    }

    async fn login(&mut self, user: &str, ticket: &str, timeout: Duration) -> Result<(), ConsoleError> {
        let line = format!("{user}:{ticket}\n");
        self.ws
            .send(Message::binary(line.into_bytes()))
            .await
            .map_err(|e| self.stream_err(e))?;
        let refused = ConsoleError::Refused { vmid: self.vmid };
        let first = tokio::time::timeout(timeout, self.ws.next()).await;
        let Ok(Some(Ok(m))) = first else { return Err(refused) };
        let data = m.into_data();
        match data.strip_prefix(b"OK") {
            Some(rest) => {
                if !rest.is_empty() {
                    self.pending = Some(Bytes::copy_from_slice(rest));
                }
                Ok(())
            }
            None => Err(refused),
        }
    }

    /// The next output bytes; `None` once the console closed (the container stopped). Pings
    /// every [`PING_INTERVAL`] while waiting.
    pub async fn next_output(&mut self) -> Result<Option<Bytes>, ConsoleError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        loop {
            match tokio::time::timeout(PING_INTERVAL, self.ws.next()).await {
                Err(_) => self.ping().await?,
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(self.stream_err(e)),
                Ok(Some(Ok(m))) if m.is_close() => return Ok(None),
                Ok(Some(Ok(m))) if m.is_binary() || m.is_text() => return Ok(Some(m.into_data())),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    async fn send(&mut self, data: Vec<u8>) -> Result<(), ConsoleError> {
        let r = self.ws.send(Message::binary(data)).await;
        r.map_err(|e| self.stream_err(e))
    }

    /// Sends input to the terminal.
    pub async fn send_input(&mut self, data: &[u8]) -> Result<(), ConsoleError> {
        self.send(encode_input(data)).await
    }

    /// Sets the terminal size.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ConsoleError> {
        self.send(encode_resize(cols, rows)).await
    }

    /// Keeps the connection alive.
    pub async fn ping(&mut self) -> Result<(), ConsoleError> {
        self.send(PING.to_vec()).await
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_framed_with_its_byte_length() {
        assert_eq!(encode_input("é\n".as_bytes()), b"0:3:\xc3\xa9\n".to_vec());
        assert_eq!(encode_resize(120, 40), b"1:120:40:".to_vec());
        assert_eq!(PING, b"2");
    }
}
