//! Typed responses and request parameters. Every response field is optional-tolerant and
//! accepts numbers sent as strings; unknown fields are ignored (or kept in `extra`).
//!
//! Grouped by resource: [`cluster`] (version, nodes, storage, cluster resources), [`lxc`]
//! (container status, config, snapshots), [`firewall`], [`ha`] (HA resources and rules), and
//! [`params`] (request parameters).
//! Everything is re-exported here and from `crate::pve`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::de;
use super::error::Result;
use super::props::{self, Features, MountPoint, NetConfig, Startup};
use super::upid::Upid;

pub mod cluster;
pub mod firewall;
pub mod ha;
pub mod lxc;
pub mod params;

pub use cluster::*;
pub use firewall::*;
pub use ha::*;
pub use lxc::*;
pub use params::*;
