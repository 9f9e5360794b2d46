//! Counters: totals that only go up.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::Error;
use crate::kind::MetricKind;
use crate::metric::{sealed::Sealed, Metric};
use crate::metric::{CounterRef, Exemplar, ExemplarSlot, Number, Scratch, ValueRef};
use crate::util::clock::now_seconds;
use crate::util::padded::CachePadded;
use crate::util::sync::AtomicU64;

#[cfg(all(feature = "multiprocess", unix))]
use crate::multiprocess::{Cell, FileKind, Series};

/// What every counter series holds besides its value, in the same padded cache block.
#[derive(Debug)]
struct CounterCore {
    /// The total: a `u64`, or an `f64` as bits for [`FloatCounter`].
    value: AtomicU64,
    /// When the series was created, as `f64` bits of seconds since the Unix epoch.
    created: AtomicU64,
    exemplar: ExemplarSlot,
    /// In multi-process mode, the value's cell in this process's file (as `f64`), which
    /// replaces `value`.
    #[cfg(all(feature = "multiprocess", unix))]
    mapped: Option<Cell>,
}

impl CounterCore {
    fn new(initial: u64) -> Arc<CachePadded<Self>> {
        Arc::new(CachePadded(Self {
            value: AtomicU64::new(initial),
            created: AtomicU64::new(now_seconds().to_bits()),
            exemplar: ExemplarSlot::default(),
            #[cfg(all(feature = "multiprocess", unix))]
            mapped: None,
        }))
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn new_mapped(initial: u64, series: &Series<'_>) -> Arc<CachePadded<Self>> {
        Arc::new(CachePadded(Self {
            value: AtomicU64::new(initial),
            created: AtomicU64::new(now_seconds().to_bits()),
            exemplar: ExemplarSlot::default(),
            mapped: series.cell(FileKind::Counter, "_total", None),
        }))
    }

    /// Adds `v` to a float counter's value.
    #[inline]
    fn add_f64(&self, v: f64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cell) = self.mapped {
            return cell.add(v);
        }
        crate::util::atomic::add_f64(&self.value, v);
    }

    /// Adds `n` to an integer counter's value.
    #[inline]
    fn add_u64(&self, n: u64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cell) = self.mapped {
            #[allow(clippy::cast_precision_loss)] // as prometheus_client: a double in the file
            return cell.add(n as f64);
        }
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// A float counter's value.
    fn get_f64(&self) -> f64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cell) = self.mapped {
            return cell.get();
        }
        f64::from_bits(self.value.load(Ordering::Relaxed))
    }

    /// An integer counter's value.
    fn get_u64(&self) -> u64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cell) = self.mapped {
            // Whole and not negative: only whole increments were added.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return cell.get() as u64;
        }
        self.value.load(Ordering::Relaxed)
    }

    /// Back to zero, for a removed series that comes back; in multi-process mode the file's
    /// total stays, so that the merged total never goes back.
    fn reset(&self, initial: u64) {
        self.value.store(initial, Ordering::Relaxed);
        self.created
            .store(now_seconds().to_bits(), Ordering::Relaxed);
        self.exemplar.clear();
    }

    fn read<'a>(&'a self, value: Number, scratch: &'a mut Scratch) -> ValueRef<'a> {
        scratch.exemplar = if scratch.want_exemplars {
            self.exemplar.get()
        } else {
            None
        };
        ValueRef::Counter(CounterRef {
            value,
            created: Some(f64::from_bits(self.created.load(Ordering::Relaxed))),
            exemplar: scratch.exemplar.as_deref(),
        })
    }
}

/// An integer counter: one relaxed atomic add per increment, on its own cache line.
///
/// Exposed as `<name>_total`; a name registered with the `_total` suffix keeps it only once.
///
/// ```
/// let registry = vitals_core::Registry::new();
/// let jobs = registry.counter("jobs_processed", "Jobs processed.").register()?;
/// jobs.inc();
/// jobs.inc_by(2);
/// assert_eq!(jobs.get(), 3);
/// assert_eq!(registry.get_sample_value("jobs_processed_total", &[]), Some(3.0));
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Counter {
    core: Arc<CachePadded<CounterCore>>,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.core.add_u64(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.core.add_u64(n);
    }

    /// Adds `n` and keeps an exemplar with these labels (such as `trace_id`) as the series'
    /// latest, shown in the OpenMetrics format.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidExemplar`] or [`Error::InvalidLabelName`] when the exemplar's labels are
    /// invalid or longer than 128 characters; `n` is added all the same.
    pub fn inc_by_with_exemplar(&self, n: u64, exemplar: &[(&str, &str)]) -> Result<(), Error> {
        self.inc_by(n);
        #[allow(clippy::cast_precision_loss)]
        let exemplar = Exemplar::new(exemplar, n as f64)?;
        self.core.exemplar.set(exemplar);
        Ok(())
    }

    /// The current total.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.core.get_u64()
    }
}

impl Metric for Counter {}

impl Sealed for Counter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;

    fn create((): &()) -> Self {
        Self {
            core: CounterCore::new(0),
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped((): &(), series: &Series<'_>) -> Self {
        Self {
            core: CounterCore::new_mapped(0, series),
        }
    }

    fn reset(&self, (): &()) {
        self.core.reset(0);
    }

    fn read<'a>(&'a self, (): &'a (), scratch: &'a mut Scratch) -> ValueRef<'a> {
        self.core.read(Number::U64(self.get()), scratch)
    }
}

/// A floating-point counter, for totals such as seconds or bytes that are not integers.
///
/// Increments that would make it go down or lose its meaning (negative, NaN, infinite) are
/// refused with [`Error::InvalidValue`] and leave the total unchanged.
///
/// ```
/// let registry = vitals_core::Registry::new();
/// let busy = registry.float_counter("busy_seconds", "Time spent busy.").register()?;
/// busy.inc_by(0.25)?;
/// assert!(busy.inc_by(-1.0).is_err());
/// assert_eq!(busy.get(), 0.25);
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FloatCounter {
    core: Arc<CachePadded<CounterCore>>,
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
        self.core.add_f64(v);
        Ok(())
    }

    /// Adds `v` and keeps an exemplar with these labels as the series' latest.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] when `v` is refused (nothing is added), or an exemplar error
    /// as for [`Counter::inc_by_with_exemplar`] (`v` is added all the same).
    pub fn inc_by_with_exemplar(&self, v: f64, exemplar: &[(&str, &str)]) -> Result<(), Error> {
        self.inc_by(v)?;
        self.core.exemplar.set(Exemplar::new(exemplar, v)?);
        Ok(())
    }

    /// Adds one.
    pub fn inc(&self) {
        self.core.add_f64(1.0);
    }

    /// The current total.
    #[must_use]
    pub fn get(&self) -> f64 {
        self.core.get_f64()
    }
}

impl Metric for FloatCounter {}

impl Sealed for FloatCounter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;

    fn create((): &()) -> Self {
        Self {
            core: CounterCore::new(0f64.to_bits()),
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped((): &(), series: &Series<'_>) -> Self {
        Self {
            core: CounterCore::new_mapped(0f64.to_bits(), series),
        }
    }

    fn reset(&self, (): &()) {
        self.core.reset(0f64.to_bits());
    }

    fn read<'a>(&'a self, (): &'a (), scratch: &'a mut Scratch) -> ValueRef<'a> {
        self.core.read(Number::F64(self.get()), scratch)
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
    fn an_invalid_exemplar_is_refused_but_the_increment_counts() {
        let c = Counter::create(&());
        let long = "x".repeat(200);
        let err = c
            .inc_by_with_exemplar(2, &[("trace_id", &long)])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidExemplar { .. }), "{err}");
        assert_eq!(c.get(), 2);
        c.inc_by_with_exemplar(3, &[("trace_id", "abc")]).unwrap();
        let mut scratch = Scratch {
            want_exemplars: true,
            ..Scratch::default()
        };
        let ValueRef::Counter(read) = c.read(&(), &mut scratch) else {
            unreachable!()
        };
        let exemplar = read.exemplar().unwrap();
        assert_eq!(exemplar.value(), 3.0);
        assert_eq!(
            exemplar.labels(),
            [("trace_id".to_owned(), "abc".to_owned())]
        );
        let f = FloatCounter::create(&());
        assert!(f.inc_by_with_exemplar(-1.0, &[("a", "b")]).is_err());
        assert_eq!(f.get(), 0.0, "a refused value adds nothing");
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
