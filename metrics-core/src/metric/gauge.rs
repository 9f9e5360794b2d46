//! Gauges: values that go up and down.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::kind::MetricKind;
use crate::metric::{sealed::Sealed, Metric};
use crate::metric::{Number, Scratch, ValueRef};
use crate::util::padded::CachePadded;
use crate::util::sync::{AtomicI64, AtomicU64};

/// An integer gauge, such as requests in flight or queue depth.
///
/// ```
/// let registry = vitals_core::Registry::new();
/// let in_flight = registry.gauge("jobs_in_flight", "Jobs being processed.").register()?;
/// {
///     let _guard = in_flight.track();
///     assert_eq!(in_flight.get(), 1);
/// }
/// assert_eq!(in_flight.get(), 0, "the guard decrements when dropped, even on panic");
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gauge {
    value: Arc<CachePadded<AtomicI64>>,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        self.value.fetch_sub(n, Ordering::Relaxed);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Increments now and returns a guard that decrements when dropped: on return, on `?`, on
    /// panic and when a future holding it is cancelled.
    #[must_use = "the gauge is decremented as soon as the guard is dropped"]
    pub fn track(&self) -> GaugeGuard<'_> {
        self.inc();
        GaugeGuard { gauge: self }
    }
}

/// Decrements its [`Gauge`] when dropped; made by [`Gauge::track`].
#[derive(Debug)]
pub struct GaugeGuard<'a> {
    gauge: &'a Gauge,
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Metric for Gauge {}

impl Sealed for Gauge {
    type Config = ();
    const KIND: MetricKind = MetricKind::Gauge;

    fn create((): &()) -> Self {
        Self {
            value: Arc::default(),
        }
    }

    fn reset(&self, (): &()) {
        self.set(0);
    }

    fn read<'a>(&'a self, (): &'a (), _: &'a mut Scratch) -> ValueRef<'a> {
        ValueRef::Gauge(Number::I64(self.get()))
    }
}

/// A floating-point gauge, such as a temperature or a ratio.
///
/// ```
/// let registry = vitals_core::Registry::new();
/// let temperature = registry.float_gauge("room_temperature_celsius", "Room temperature.").register()?;
/// temperature.set(21.5);
/// temperature.add(0.25);
/// assert_eq!(temperature.get(), 21.75);
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FloatGauge {
    bits: Arc<CachePadded<AtomicU64>>,
}

impl FloatGauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        crate::util::atomic::add_f64(&self.bits, v);
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        crate::util::atomic::add_f64(&self.bits, -v);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

impl Metric for FloatGauge {}

impl Sealed for FloatGauge {
    type Config = ();
    const KIND: MetricKind = MetricKind::Gauge;

    fn create((): &()) -> Self {
        Self {
            bits: Arc::new(CachePadded(AtomicU64::new(0f64.to_bits()))),
        }
    }

    fn reset(&self, (): &()) {
        self.set(0.0);
    }

    fn read<'a>(&'a self, (): &'a (), _: &'a mut Scratch) -> ValueRef<'a> {
        ValueRef::Gauge(Number::F64(self.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_guard_decrements_when_a_panic_unwinds_through_it() {
        let gauge = Gauge::create(&());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = gauge.track();
            assert_eq!(gauge.get(), 1);
            panic!("handler failed");
        }));
        assert!(result.is_err());
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn gauges_go_both_ways() {
        let g = Gauge::create(&());
        g.set(10);
        g.add(-3);
        g.sub(2);
        g.dec();
        g.inc();
        assert_eq!(g.get(), 5);
        let f = FloatGauge::create(&());
        f.set(1.5);
        f.sub(2.0);
        assert_eq!(f.get(), -0.5);
    }
}
