//! Golden-signal HTTP metrics for actix-web.
//!
//! **Not implemented yet.** The `Metrics` middleware is tracked by the project's issue on
//! metrics-actix; this crate exists so that the workspace has its final shape. It exports
//! nothing today, so nothing can be used by mistake. Until then, record into [`metrics_core`]
//! directly.
