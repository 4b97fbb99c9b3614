//! What the Pod controller ([`super::pod`]) and the binder ([`super::bind`]) share.

use super::console::PodLogs;
use super::VnodeIndex;
use crate::controller::Context;
use std::sync::Arc;

/// What the Pod controller shares.
pub struct PodContext {
    /// The operator's context.
    pub ctx: Arc<Context>,
    /// Our Nodes.
    pub index: Arc<VnodeIndex>,
    /// What the Pods' consoles said (the exit status of an ended app), when the kubelet
    /// endpoint runs.
    pub logs: Option<Arc<PodLogs>>,
}
