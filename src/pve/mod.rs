//! The Proxmox VE client. This module never imports `kube`.
//!
//! * [`Client`] — async, cheap to clone; endpoint failover, API token or ticket auth,
//!   TLS verify / fingerprint pinning / insecure, request-rate limit, GET retries.
//! * [`Error`] — one error type; [`Error::class`] and [`Error::is_retryable`] tell the
//!   controllers what to do.
//! * [`Upid`], [`TaskStatus`], [`TaskResult`] — tasks; [`Client::wait_task`] polls one.
//! * [`props`] — typed property strings (`netN`, `rootfs`, `mpN`, `features`, `startup`,
//!   tags).
//!
//! Task-starting calls do not take a per-node task slot themselves; callers take one with
//! [`Client::acquire_task_slot`] and hold it until the task has finished.

mod api;
mod api_ha;
mod auth;
mod client;
mod console;
pub(crate) mod de;
mod endpoint;
mod error;
pub mod props;
mod tls;
mod types;
mod upid;

pub use api_ha::ct_sid;
pub use auth::Auth;
pub use client::{encode_segment, Client, ClientConfig, Limits, RequestHook, RequestHookFn, RetryPolicy};
pub use console::{encode_input, encode_resize, Console, ConsoleError, TermProxy, PING, PING_INTERVAL};
pub use endpoint::DEFAULT_MAX_RESPONSE_BYTES;
pub use error::{locked_reason, Error, ErrorClass, Result};
pub use props::{Features, MountPoint, NetConfig, Startup};
pub use reqwest::Method;
pub use tls::{cert_fingerprint, format_fingerprint, parse_fingerprint, TlsMode};
pub use types::*;
pub use upid::{TaskLogLine, TaskResult, TaskStatus, Upid};
