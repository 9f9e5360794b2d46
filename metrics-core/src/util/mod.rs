//! Building blocks that import nothing else from the crate: the append-only arena, atomic
//! float sums, base64, the clocks, text formatting, cache-line padding and per-thread shards.

pub(crate) mod arena;
pub(crate) mod atomic;
#[cfg(any(feature = "exporter", feature = "push", feature = "otlp"))]
pub(crate) mod base64;
pub(crate) mod clock;
pub(crate) mod fmt;
pub(crate) mod padded;
pub(crate) mod shard;
pub(crate) mod sync;
