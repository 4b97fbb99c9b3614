//! Errors the simulator answers with, and small helpers shared by the state and the API.

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// An error answered to the client.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// HTTP 500 with a plain message (a `die` in a PVE handler). A `\n` is appended like Perl's.
    pub(crate) fn e500(msg: impl Into<String>) -> ApiError {
        let mut m = msg.into();
        if !m.ends_with('\n') {
            m.push('\n');
        }
        ApiError {
            status: 500,
            message: m,
            errors: None,
        }
    }
    /// HTTP 400 `Parameter verification failed.` with one error.
    pub(crate) fn param(key: &str, msg: impl Into<String>) -> ApiError {
        let mut e = BTreeMap::new();
        e.insert(key.to_string(), msg.into());
        ApiError::params(e)
    }
    /// HTTP 400 with an `errors` object.
    pub(crate) fn params(errors: BTreeMap<String, String>) -> ApiError {
        ApiError {
            status: 400,
            message: "Parameter verification failed.\n".into(),
            errors: Some(errors),
        }
    }
    /// Any status with a message.
    pub(crate) fn status(status: u16, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: msg.into(),
            errors: None,
        }
    }
}

/// Result type of handlers.
pub(crate) type ApiResult<T = Value> = Result<T, ApiError>;

/// Seconds since the epoch.
pub(crate) fn now_epoch() -> u64 {
    now_ms() / 1000
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
