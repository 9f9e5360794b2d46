//! Benchmarks of vitals next to its peers live in `benches/`; see `BENCHMARKS.md` at the root.
//!
//! This library holds the workloads shared by the benchmark binaries so that every crate is
//! measured on exactly the same inputs.

pub mod noop;

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `op(i + t)` for `i` in `0..iters` on each of `threads` threads `t`, started together,
/// and gives the slower thread's time: per operation, that is the time on each thread while
/// all of them run (one thread runs inline). For `iter_custom`.
pub fn time_on_threads(iters: u64, threads: u64, op: impl Fn(u64) + Sync) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        for i in 0..iters {
            op(black_box(i));
        }
        return start.elapsed();
    }
    let barrier = std::sync::Barrier::new(usize::try_from(threads).expect("a thread count"));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (op, barrier) = (&op, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        op(black_box(i + t));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the benchmark thread runs"))
            .max()
            .unwrap_or_default()
    })
}

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
            #[allow(clippy::cast_precision_loss)] // 53 bits: both convert exactly
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            unit * unit * unit * 12.0
        })
        .collect()
}
