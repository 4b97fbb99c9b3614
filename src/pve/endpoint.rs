//! Endpoint URLs and bounded response bodies.

use super::error::{Error, Result};

/// Default limit of one response body: 64 MiB (the inventory of a 10,000-guest cluster is a
/// few MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Normalizes an endpoint to its `https://host:port/api2/json` base. Refused: schemes other
/// than `https` (credentials must never travel in clear text), user info (`user:pass@`,
/// which would be sent nowhere but could leak into logs and status), no host.
pub(crate) fn normalize_endpoint(e: &str) -> Result<String> {
    let e = e.trim();
    let with_scheme = if e.contains("://") {
        e.to_string()
    } else {
        format!("https://{e}")
    };
    let invalid = |why: &str| Error::Config {
        message: format!("invalid endpoint {:?}: {why}", redact_userinfo(e)),
    };
    let mut url = url::Url::parse(&with_scheme).map_err(|err| invalid(&err.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("scheme must be https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "user info (user:password@) is not allowed; credentials come from the Secret",
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid("no host"));
    }
    if url.port().is_none() && !e.contains("://") {
        let _ = url.set_port(Some(8006));
    }
    let path = url.path().trim_end_matches('/').to_string();
    if path.is_empty() {
        url.set_path("/api2/json");
    } else {
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `scheme://user:pass@host` → `scheme://***@host`, for error texts.
fn redact_userinfo(e: &str) -> String {
    let (scheme, rest) = e.split_once("://").unwrap_or(("", e));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}://")
            };
            format!("{prefix}***@{}", &rest[at + 1..])
        }
        None => e.to_string(),
    }
}

/// Reads a response body, failing with [`Error::ResponseTooLarge`] as soon as it exceeds
/// `limit` bytes (by `Content-Length` before reading, or while reading).
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: u64,
    method: &reqwest::Method,
    path: &str,
    endpoint: &str,
) -> std::result::Result<Body, ReadError> {
    let too_large = || {
        ReadError::TooLarge(Error::ResponseTooLarge {
            method: method.to_string(),
            path: path.to_string(),
            endpoint: endpoint.to_string(),
            limit,
        })
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Body::default();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if body.len as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.len += chunk.len();
        body.chunks.push_back(chunk);
    }
    Ok(body)
}

/// A response body as it came, in chunks: decoded by [`Body::reader`], each chunk is freed as
/// soon as it is read, so a large answer (the inventory of 10,000 guests, megabytes of JSON)
/// is never held whole next to what is decoded from it.
#[derive(Debug, Default)]
pub(crate) struct Body {
    chunks: std::collections::VecDeque<bytes::Bytes>,
    len: usize,
}

impl Body {
    /// The whole body in one piece (no copy when it came in one chunk).
    pub(crate) fn bytes(mut self) -> bytes::Bytes {
        match self.chunks.len() {
            0 => bytes::Bytes::new(),
            1 => self.chunks.pop_front().unwrap_or_default(),
            _ => {
                let mut buf = bytes::BytesMut::with_capacity(self.len);
                for c in &self.chunks {
                    buf.extend_from_slice(c);
                }
                buf.freeze()
            }
        }
    }

    /// Whether it is empty or white space only.
    pub(crate) fn is_blank(&self) -> bool {
        self.chunks.iter().all(|c| c.iter().all(u8::is_ascii_whitespace))
    }

    /// Reads it front to back, dropping each chunk once read.
    pub(crate) fn reader(self) -> BodyReader {
        BodyReader(self.chunks)
    }
}

/// See [`Body::reader`].
pub(crate) struct BodyReader(std::collections::VecDeque<bytes::Bytes>);

impl std::io::Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while let Some(front) = self.0.front_mut() {
            if front.is_empty() {
                self.0.pop_front();
                continue;
            }
            let n = out.len().min(front.len());
            out[..n].copy_from_slice(&front[..n]);
            bytes::Buf::advance(front, n);
            return Ok(n);
        }
        Ok(0)
    }
}

/// Why [`read_limited`] failed.
pub(crate) enum ReadError {
    /// Over the limit.
    TooLarge(Error),
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&str]) -> Body {
        Body {
            chunks: chunks
                .iter()
                .map(|c| bytes::Bytes::copy_from_slice(c.as_bytes()))
                .collect(),
            len: chunks.iter().map(|c| c.len()).sum(),
        }
    }

    #[test]
    fn a_body_in_chunks_reads_and_decodes_as_the_whole_and_blank_is_blank() {
        let json = ["{\"da", "", "ta\": [1, 2", ", 3]}"];
        assert_eq!(&body(&json).bytes()[..], b"{\"data\": [1, 2, 3]}");
        let v: serde_json::Value = serde_json::from_reader(std::io::BufReader::new(body(&json).reader())).unwrap();
        assert_eq!(v["data"], serde_json::json!([1, 2, 3]));
        assert!(body(&[" ", "\n"]).is_blank() && body(&[]).is_blank() && !body(&[" x"]).is_blank());
        assert_eq!(&body(&["one"]).bytes()[..], b"one");
    }

    #[test]
    fn endpoints_are_normalized_to_the_api2_json_base() {
        assert_eq!(normalize_endpoint("pve1").unwrap(), "https://pve1:8006/api2/json");
        assert_eq!(
            normalize_endpoint("10.0.0.1:8443").unwrap(),
            "https://10.0.0.1:8443/api2/json"
        );
        assert_eq!(
            normalize_endpoint("https://pve1:8006/api2/json/").unwrap(),
            "https://pve1:8006/api2/json"
        );
        assert!(normalize_endpoint("ftp://x").is_err());
    }

    #[test]
    fn endpoints_with_user_info_are_refused_without_echoing_the_password() {
        for e in [
            "https://root:hunter2@pve1:8006",
            "root:hunter2@pve1",
            "https://root@pve1:8006",
        ] {
            let err = normalize_endpoint(e).unwrap_err().to_string();
            assert!(err.contains("user info"), "{e}: {err}");
            assert!(!err.contains("hunter2"), "{e}: {err}");
        }
    }

    #[test]
    fn plain_http_endpoints_are_refused() {
        let err = normalize_endpoint("http://pve1:8006").unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
    }
}
