//! The `LxcContainer` controller.

pub mod desired;
pub mod plan;
