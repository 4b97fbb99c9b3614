//! The `LxcBackup` and `LxcBackupSchedule` controllers.

use super::context::Context;
use super::run::ControllerFuture;
use kube::Client;
use std::sync::Arc;

/// The backup controllers of one namespace (or all). Not built yet: they idle.
pub fn controller(_client: &Client, _namespace: Option<&str>, _ctx: Arc<Context>) -> ControllerFuture {
    Box::pin(futures::future::pending())
}
