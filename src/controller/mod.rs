//! Controllers: one module per kind, plus the per-cluster observer.
