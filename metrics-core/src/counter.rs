//! Counters: totals that only go up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::metric::{sealed::Sealed, CachePadded, Metric};
use crate::value::{MetricKind, Number, Scratch, ValueRef};

/// An integer counter: one relaxed atomic add per increment, on its own cache line.
///
/// Exposed as `<name>_total`; a name registered with the `_total` suffix keeps it only once.
///
/// ```
/// let registry = metrics_core::Registry::new();
/// let jobs = registry.counter("jobs_processed", "Jobs processed.").register()?;
/// jobs.inc();
/// jobs.inc_by(2);
/// assert_eq!(jobs.get(), 3);
/// assert_eq!(registry.get_sample_value("jobs_processed_total", &[]), Some(3.0));
/// # Ok::<(), metrics_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Counter {
    value: Arc<CachePadded<AtomicU64>>,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current total.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl Metric for Counter {}

impl Sealed for Counter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;

    fn create((): &()) -> Self {
        Self {
            value: Arc::default(),
        }
    }

    fn reset(&self, (): &()) {
        self.value.store(0, Ordering::Relaxed);
    }

    fn read<'a>(&'a self, (): &'a (), _: &'a mut Scratch) -> ValueRef<'a> {
        ValueRef::Counter(Number::U64(self.get()))
    }
}

/// A floating-point counter, for totals such as seconds or bytes that are not integers.
///
/// Increments that would make it go down or lose its meaning (negative, NaN, infinite) are
/// refused with [`Error::InvalidValue`] and leave the total unchanged.
///
/// ```
/// let registry = metrics_core::Registry::new();
/// let busy = registry.float_counter("busy_seconds", "Time spent busy.").register()?;
/// busy.inc_by(0.25)?;
/// assert!(busy.inc_by(-1.0).is_err());
/// assert_eq!(busy.get(), 0.25);
/// # Ok::<(), metrics_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FloatCounter {
    bits: Arc<CachePadded<AtomicU64>>,
}

impl FloatCounter {
    /// Adds `v`, which must be finite and not negative.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] when `v` is negative, NaN or infinite; the total is unchanged.
    pub fn inc_by(&self, v: f64) -> Result<(), Error> {
        if !v.is_finite() || v < 0.0 {
            return Err(Error::InvalidValue {
                value: v,
                reason: "a counter increment must be finite and not negative",
            });
        }
        crate::atomic::add_f64(&self.bits, v);
        Ok(())
    }

    /// Adds one.
    pub fn inc(&self) {
        crate::atomic::add_f64(&self.bits, 1.0);
    }

    /// The current total.
    #[must_use]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

impl Metric for FloatCounter {}

impl Sealed for FloatCounter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;

    fn create((): &()) -> Self {
        Self {
            bits: Arc::new(CachePadded(AtomicU64::new(0f64.to_bits()))),
        }
    }

    fn reset(&self, (): &()) {
        self.bits.store(0f64.to_bits(), Ordering::Relaxed);
    }

    fn read<'a>(&'a self, (): &'a (), _: &'a mut Scratch) -> ValueRef<'a> {
        ValueRef::Counter(Number::F64(self.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_counter_refuses_negative_nan_and_infinite_increments() {
        let c = FloatCounter::create(&());
        c.inc_by(1.5).unwrap();
        for bad in [-0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = c.inc_by(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
        }
        assert_eq!(c.get(), 1.5, "refused increments leave the total unchanged");
    }

    #[test]
    fn counter_clones_share_one_series() {
        let a = Counter::create(&());
        let b = a.clone();
        a.inc();
        b.inc_by(41);
        assert_eq!(a.get(), 42);
    }
}
