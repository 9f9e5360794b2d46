//! Gauges: values that go up and down.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::kind::MetricKind;
use crate::metric::{sealed::Sealed, Metric};
use crate::metric::{Number, Scratch, ValueRef};
use crate::util::padded::CachePadded;
use crate::util::sync::{AtomicI64, AtomicU64};

#[cfg(all(feature = "multiprocess", unix))]
use crate::multiprocess::{Cell, FileKind, GaugeMode, Series};

/// A gauge's value in multi-process mode: its cell in this process's file, and whether `set`
/// stamps it (the `mostrecent` modes).
#[cfg(all(feature = "multiprocess", unix))]
#[derive(Debug, Clone, Copy)]
struct Mapped {
    cell: Cell,
    stamped: bool,
}

#[cfg(all(feature = "multiprocess", unix))]
impl Mapped {
    fn new(series: &Series<'_>) -> Option<Self> {
        let mode = series.gauge_mode(GaugeMode::All);
        Some(Self {
            cell: series.cell(FileKind::Gauge(mode), "", None)?,
            stamped: matches!(mode, GaugeMode::MostRecent | GaugeMode::LiveMostRecent),
        })
    }

    #[inline]
    fn set(self, v: f64) {
        if self.stamped {
            self.cell.set_at(v, crate::util::clock::now_seconds());
        } else {
            self.cell.set(v);
        }
    }
}

/// What a gauge series holds.
#[derive(Debug, Default)]
struct GaugeCore<T> {
    value: T,
    #[cfg(all(feature = "multiprocess", unix))]
    mapped: Option<Mapped>,
}

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
    core: Arc<CachePadded<GaugeCore<AtomicI64>>>,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = self.core.mapped {
            #[allow(clippy::cast_precision_loss)] // as prometheus_client: a double in the file
            return mapped.set(v as f64);
        }
        self.core.value.store(v, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = self.core.mapped {
            #[allow(clippy::cast_precision_loss)]
            return mapped.cell.add(n as f64);
        }
        self.core.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        self.add(n.wrapping_neg());
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> i64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = self.core.mapped {
            // Whole: only whole values were added or set.
            #[allow(clippy::cast_possible_truncation)]
            return mapped.cell.get() as i64;
        }
        self.core.value.load(Ordering::Relaxed)
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
            core: Arc::default(),
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped((): &(), series: &Series<'_>) -> Self {
        Self {
            core: Arc::new(CachePadded(GaugeCore {
                value: AtomicI64::new(0),
                mapped: Mapped::new(series),
            })),
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
    core: Arc<CachePadded<GaugeCore<AtomicU64>>>,
}

impl FloatGauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = self.core.mapped {
            return mapped.set(v);
        }
        self.core.value.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = self.core.mapped {
            return mapped.cell.add(v);
        }
        crate::util::atomic::add_f64(&self.core.value, v);
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> f64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = self.core.mapped {
            return mapped.cell.get();
        }
        f64::from_bits(self.core.value.load(Ordering::Relaxed))
    }
}

impl Metric for FloatGauge {}

impl Sealed for FloatGauge {
    type Config = ();
    const KIND: MetricKind = MetricKind::Gauge;

    fn create((): &()) -> Self {
        Self {
            core: Arc::new(CachePadded(GaugeCore {
                value: AtomicU64::new(0f64.to_bits()),
                #[cfg(all(feature = "multiprocess", unix))]
                mapped: None,
            })),
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped((): &(), series: &Series<'_>) -> Self {
        Self {
            core: Arc::new(CachePadded(GaugeCore {
                value: AtomicU64::new(0f64.to_bits()),
                mapped: Mapped::new(series),
            })),
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
