//! The `LxcContainer` controller: pure validation, decisions and planning, and the passes that
//! carry them out.
//!
//! - [`desired`]: the spec validated into the Proxmox config it asks for (pure).
//! - [`identity`]: whose a Proxmox container is (the evidence gathered once, the pure rule).
//! - [`decide`]: where a new container goes, and the restart back-off (pure).
//! - [`plan`]: desired vs observed → the operations to make (pure).
//! - [`reconcile`]: the pass: resolve, validate, check the task in flight, then create or converge.
//! - [`create`], [`converge`], [`lifecycle`] (adoption, deletion), [`locate`]: the steps.
//! - [`clone_snapshot`]: the temporary snapshot a full clone of a running source is made from.
//! - [`firewall`], [`service`]: the firewall rules and the published Service.
//! - [`image`], [`app`]: containers from OCI images (the pull) and their process settings.
//! - [`host_mounts`]: bind mounts and devices, their `mpN`/`devN` slots (pure).
//! - [`precheck`]: the spec against the cluster's inventory (nodes, storages, bridges, OS
//!   templates, capacity) before a create (pure).
//! - [`ha`]: `spec.highAvailability`, the HA resource and its node-affinity rule.
//! - [`rootfs`]: the root volume recorded in status (pure).
//! - [`restart`]: a restart on request (the `pve.lxc.dev/restartedAt` annotation), once per value.

pub mod app;
pub mod app_values;
pub mod clone_snapshot;
pub mod config;
pub mod converge;
pub mod converge_step;
pub mod create;
pub mod create_step;
pub mod decide;
pub mod desired;
pub mod firewall;
pub mod ha;
pub mod host_mounts;
pub mod identity;
pub mod image;
pub mod lifecycle;
pub mod locate;
pub mod pass;
pub mod plan;
pub mod precheck;
pub mod reconcile;
pub mod report;
pub mod restart;
pub mod rootfs;
pub mod service;
pub mod task;
pub mod tenancy;
