//! `#[instrumented]` for vitals: function-level golden signals.
//!
//! **Not implemented yet.** The attribute is tracked by the project's issue on
//! `#[instrumented]`; this crate exists so that the workspace has its final shape. It exports
//! nothing today, so nothing can be used by mistake.
