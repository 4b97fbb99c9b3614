//! The `LxcContainer` controller: pure validation, decisions and planning, and the passes that
//! carry them out. Read in this order:
//!
//! 1. [`reconcile`]: the pass: resolve, validate, check the task in flight ([`task`]), then
//!    create or converge (or delete and observe: [`lifecycle`]); [`pass`] is what every step uses.
//! 2. [`converge`]: an existing container, as gather → decide → act; [`converge_step`] is the
//!    pure decision (one step per rule, table-tested in `converge_tests.rs`); [`report`] is what
//!    status says once it is in sync.
//! 3. [`create`]: a new container, the same way; [`create_step`] is its pure decision
//!    (`create_tests.rs`).
//! 4. The pure parts the decisions use: [`desired`] (the spec validated into the Proxmox config
//!    it asks for; [`settings`] is the part a template shares, [`managed`] the typed config keys
//!    with their encoding and their comparison), [`identity`] (whose a container is: the evidence gathered once, the rule),
//!    [`decide`] (placement, clone node, restart back-off), [`plan`] (desired vs observed, with
//!    [`config`]), [`host_mounts`] (bind mounts and devices), [`precheck`] (the spec against the
//!    inventory before a create).
//! 5. The features the steps carry out: [`image`] (the pull), [`app`] and [`app_values`]
//!    (process settings and the values they read), [`ha`] (the HA resource and rule),
//!    [`clone_snapshot`] (the temporary snapshot a clone is made from), [`firewall`],
//!    [`service`], [`tenancy`] (the tenant's policy), [`locate`] (where the container is),
//!    [`restart`] (a restart on request, the `pve.lxc.dev/restartedAt` annotation, once per value),
//!    [`rootfs`] (the root volume recorded in status).

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
mod desired_net;
pub mod firewall;
pub mod ha;
pub mod host_mounts;
pub mod identity;
pub mod image;
pub mod lifecycle;
pub mod locate;
pub mod managed;
pub mod pass;
pub mod plan;
pub mod precheck;
pub mod reconcile;
pub mod report;
pub mod restart;
pub mod rootfs;
pub mod service;
pub mod settings;
pub mod task;
pub mod tenancy;
