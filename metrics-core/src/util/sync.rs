//! The atomics that loom models check: loom's under `--cfg vitals_loom`, std's otherwise.

#[cfg(vitals_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(vitals_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
