//! The `LxcTemplate` controller.

use super::context::Context;
use super::run::ControllerFuture;
use kube::Client;
use std::sync::Arc;

/// The `LxcTemplate` controller of one namespace (or all). Not built yet: it idles.
pub fn controller(_client: &Client, _namespace: Option<&str>, _ctx: Arc<Context>) -> ControllerFuture {
    Box::pin(futures::future::pending())
}
