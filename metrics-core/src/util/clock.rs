//! The clocks: the one that times requests and calls, cheap enough to read twice per call,
//! and the wall clock of `_created` samples and exemplars.
//!
//! `Instant::now()` is a vDSO call around the time-stamp counter, and timing a call reads it
//! twice: a large part of what `#[instrumented]` adds (BENCHMARKS.md has the figures). quanta
//! reads the CPU's time-stamp counter directly when the CPU says it is invariant (and falls
//! back to the OS monotonic clock when it is not). Its calibration (about a millisecond) runs
//! once, when the first HTTP recorder is built or the first instrumented function is called.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

#[inline]
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock if it is not yet; for slow paths, so that the first timed call does
/// not pay for it.
pub(crate) fn init() {
    clock();
}

/// A reading of the clock, in its own units.
#[inline]
pub(crate) fn now() -> u64 {
    clock().raw()
}

/// Nanoseconds since `start`, a reading of [`now`]; 0 if the clock went backwards (two cores
/// whose counters disagree).
#[inline]
pub(crate) fn nanos_since(start: u64) -> u64 {
    let clock = clock();
    clock.delta_as_nanos(start, clock.raw())
}

/// The clock ticks in a millisecond (at least one), worked out once from the clock's
/// calibration: an interval in [`now`]'s units, for a hot path that compares readings.
#[inline]
pub(crate) fn ticks_per_millisecond() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // The nanoseconds of a long span of ticks, as the clock converts them.
        const SPAN: u64 = 1 << 40;
        let nanos = clock().delta_as_nanos(0, SPAN).max(1);
        let ticks = u128::from(SPAN) * 1_000_000 / u128::from(nanos);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    })
}

/// Seconds since the Unix epoch, for `_created` samples and exemplar timestamps.
pub(crate) fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_measures_a_sleep() {
        let start = now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let elapsed = nanos_since(start);
        assert!(
            elapsed >= 20_000_000,
            "measured {elapsed} ns for a 20 ms sleep"
        );
        // Generous: the machine may deschedule us, but not for seconds.
        assert!(
            elapsed < 5_000_000_000,
            "measured {elapsed} ns for a 20 ms sleep"
        );
    }
}
