//! Benchmarks of vitals next to its peers live in `benches/`; see `BENCHMARKS.md` at the root.
//!
//! This library holds the workloads shared by the benchmark binaries so that every crate is
//! measured on exactly the same inputs.

pub mod noop;

/// Deterministic pseudo-random observations for histogram benchmarks: a xorshift sequence
/// mapped onto latencies between 0 and about 12 seconds, skewed towards small values.
#[must_use]
pub fn latencies(n: usize) -> Vec<f64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            unit * unit * unit * 12.0
        })
        .collect()
}
