//! Controllers: one module per kind, plus the per-cluster observer.

pub mod conditions;
pub mod container;
