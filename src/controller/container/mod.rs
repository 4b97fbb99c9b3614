//! The `LxcContainer` controller: pure validation and planning, and the reconcile that applies
//! them.

pub mod desired;
pub mod firewall;
pub mod plan;
pub mod reconcile;
pub mod service;
