//! f64 arithmetic on `AtomicU64` bit patterns.

use std::sync::atomic::Ordering;

// Loom's in loom models (`--cfg vitals_loom`).
use crate::util::sync::AtomicU64;

/// Adds `v` to the f64 stored as bits in `cell` with a compare-and-swap loop.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, v: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + v).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}
