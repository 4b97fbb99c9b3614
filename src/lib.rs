//! proxmox-lxc-operator: manage Proxmox VE LXC containers as Kubernetes resources.
//!
//! Layout (one-way dependencies):
//! - [`pve`]: a plain async Proxmox VE API client (never imports `kube`).
//! - [`sim`]: the Proxmox VE API simulator used by tests, the demo and benchmarks.
//! - [`crd`]: the Kubernetes API types (group `pve.lxc.dev`, version `v1alpha1`).
//! - [`controller`]: one module per kind, plus the per-cluster observer.
//! - [`ui`]: the management web UI (`run --ui-addr`), acting with each user's own token.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod controller;
pub mod crd;
pub mod http;
pub mod metrics;
pub mod metrics_auth;
pub mod pve;
pub mod sim;
pub mod telemetry;
pub mod ui;
