//! Golden-signal HTTP metrics for axum and any tower HTTP service.
//!
//! **Not implemented yet.** `MetricsLayer` is tracked by the project's issue on metrics-tower;
//! this crate exists so that the workspace has its final shape. It exports nothing today, so
//! nothing can be used by mistake. Until then, record into [`metrics_core`] directly.
