//! Histograms: observations counted into buckets.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::kind::MetricKind;
use crate::metric::{
    bucket_index, sealed::Sealed, Buckets, Exemplar, ExemplarSlot, HistogramRef, Metric, Scratch,
    ValueRef,
};
use crate::util::clock::now_seconds;
use crate::util::sync::{AtomicU64, OnceLock};

#[cfg(all(feature = "multiprocess", unix))]
use crate::multiprocess::{Cell, FileKind, Series};

/// A histogram's values in multi-process mode, as prometheus_client keeps them: a count per
/// bucket (not cumulative) and the sum, each a cell of this process's file.
#[cfg(all(feature = "multiprocess", unix))]
#[derive(Debug)]
struct Mapped {
    buckets: Box<[Cell]>,
    sum: Cell,
}

#[cfg(all(feature = "multiprocess", unix))]
impl Mapped {
    fn new(bounds: &[f64], series: &Series<'_>) -> Option<Self> {
        let buckets = bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .map(|le| series.cell(FileKind::Histogram, "_bucket", Some(le)))
            .collect::<Option<_>>()?;
        Some(Self {
            buckets,
            sum: series.cell(FileKind::Histogram, "_sum", None)?,
        })
    }
}

/// A histogram: observations counted into buckets, with their sum.
///
/// An observation is a bucket search (a few nanoseconds over 14 bounds) and two atomic
/// updates: the bucket's count and the sum. The count is not stored apart: a scrape derives it
/// from the buckets, so `_count` always equals the `+Inf` bucket and cumulative buckets never
/// decrease, however many threads observe during the scrape. The sum is read at the same scrape
/// and may include an observation whose bucket was read just before it landed, or miss one: it
/// converges at the next scrape.
///
/// A NaN observation is counted in the `+Inf` bucket and left out of the sum, so that one bad
/// value cannot turn `_sum` into NaN for the rest of the process's life.
///
/// ```
/// use vitals_core::{Buckets, Registry};
///
/// let registry = Registry::new();
/// let latency = registry
///     .histogram("job_duration_seconds", "Time to run a job.")
///     .buckets(Buckets::new([0.1, 1.0])?)
///     .register()?;
/// latency.observe(0.05);
/// latency.observe(0.5);
/// {
///     let _timer = latency.start_timer(); // observes the elapsed seconds when dropped
/// }
/// assert_eq!(registry.get_sample_value("job_duration_seconds_count", &[]), Some(3.0));
/// assert_eq!(registry.get_sample_value("job_duration_seconds_bucket", &[("le", "1.0")]), Some(3.0));
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Histogram {
    core: Arc<HistogramCore>,
}

#[derive(Debug)]
struct HistogramCore {
    bounds: Arc<[f64]>,
    /// One count per bound, then the `+Inf` bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
    /// The sum of the durations observed as such, in nanoseconds: exact, and converted to
    /// seconds once, when read (so a timed histogram's `_sum` prints `0.000028689`, not
    /// `0.000028689000000000003`).
    sum_nanos: AtomicU64,
    /// When the series was created, as `f64` bits of seconds since the Unix epoch.
    created: AtomicU64,
    /// The latest exemplar of each bucket, allocated with the first exemplar.
    exemplars: OnceLock<Box<[ExemplarSlot]>>,
    /// The smallest and largest observation since the last tick of the windowed statistics,
    /// when the histogram was registered with `window_extremes(true)`.
    extremes: Option<Extremes>,
    /// In multi-process mode, the cells that replace `counts` and the sums.
    #[cfg(all(feature = "multiprocess", unix))]
    mapped: Option<Mapped>,
}

impl Histogram {
    /// Records one observation. An infinite or NaN one is counted (in `+Inf`, or for `-Inf`
    /// in the first bucket) but left out of `_sum`, which it would otherwise ruin for good.
    #[inline]
    pub fn observe(&self, v: f64) {
        let core = &*self.core;
        let index = bucket_index(&core.bounds, v);
        if let Some(extremes) = &core.extremes {
            extremes.record(v);
        }
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = &core.mapped {
            if v.is_finite() {
                mapped.sum.add(v);
            }
            return mapped.buckets[index].add(1.0);
        }
        // An infinite or NaN observation would make the sum infinite or NaN for the life of
        // the series: it is counted, in its bucket, and left out of the sum.
        if v.is_finite() {
            crate::util::atomic::add_f64(&core.sum_bits, v);
        }
        // The count last, with release: a scrape that counts this observation (its bucket
        // read with acquire, before the sum) sees it in the sum too.
        core.counts[index].fetch_add(1, Ordering::Release);
    }

    /// Records one observation and keeps an exemplar with these labels (such as `trace_id`)
    /// as the latest of the bucket it fell in, shown in the OpenMetrics format.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidExemplar`] or [`Error::InvalidLabelName`] when the exemplar's labels are
    /// invalid or longer than 128 characters; the observation is recorded all the same.
    pub fn observe_with_exemplar(&self, v: f64, exemplar: &[(&str, &str)]) -> Result<(), Error> {
        self.observe(v);
        let exemplar = Exemplar::new(exemplar, v)?;
        let core = &*self.core;
        let slots = core.exemplars.get_or_init(|| {
            (0..core.counts.len())
                .map(|_| ExemplarSlot::default())
                .collect()
        });
        slots[bucket_index(&core.bounds, v)].set(exemplar);
        Ok(())
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn observe_duration(&self, elapsed: Duration) {
        let core = &*self.core;
        let index = bucket_index(&core.bounds, elapsed.as_secs_f64());
        if let Some(extremes) = &core.extremes {
            extremes.record(elapsed.as_secs_f64());
        }
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = &core.mapped {
            mapped.sum.add(elapsed.as_secs_f64());
            return mapped.buckets[index].add(1.0);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        core.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        // Last, with release, as in `observe`.
        core.counts[index].fetch_add(1, Ordering::Release);
    }

    /// Starts a timer that observes the elapsed seconds when it is dropped or stopped.
    #[must_use = "the timer observes as soon as it is dropped"]
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer {
            histogram: self,
            start: Instant::now(),
            armed: true,
        }
    }

    /// The number of observations so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = &self.core.mapped {
            // Whole counts, each below 2^53.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return mapped.buckets.iter().map(|b| b.get() as u64).sum();
        }
        self.core
            .counts
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .sum()
    }

    /// The sum of all observations so far.
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.core.sum()
    }
}

/// Observes the seconds since it was started into its [`Histogram`] when dropped; made by
/// [`Histogram::start_timer`].
#[derive(Debug)]
pub struct HistogramTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
    armed: bool,
}

impl HistogramTimer<'_> {
    /// Observes now and returns the elapsed time.
    pub fn stop(mut self) -> Duration {
        self.armed = false;
        let elapsed = self.start.elapsed();
        self.histogram.observe_duration(elapsed);
        elapsed
    }

    /// Drops the timer without observing anything.
    pub fn discard(mut self) {
        self.armed = false;
    }
}

impl Drop for HistogramTimer<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.histogram.observe_duration(self.start.elapsed());
        }
    }
}

impl HistogramCore {
    /// The observed values' sum plus the observed durations' sum, the latter divided into
    /// seconds once: exact for a histogram that only times.
    fn sum(&self) -> f64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = &self.mapped {
            return mapped.sum.get();
        }
        let values = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        #[allow(clippy::cast_precision_loss)] // exact below 2^53 ns (104 days of durations)
        let durations = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        values + durations
    }
}

impl Histogram {
    fn with_core(buckets: &Buckets, finish: impl FnOnce(HistogramCore) -> HistogramCore) -> Self {
        Self {
            core: Arc::new(finish(HistogramCore {
                bounds: Arc::clone(&buckets.bounds),
                counts: (0..=buckets.bounds.len())
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                sum_bits: AtomicU64::new(0f64.to_bits()),
                sum_nanos: AtomicU64::new(0),
                created: AtomicU64::new(now_seconds().to_bits()),
                exemplars: OnceLock::new(),
                extremes: buckets.extremes.then(Extremes::new),
                #[cfg(all(feature = "multiprocess", unix))]
                mapped: None,
            })),
        }
    }
}

impl Metric for Histogram {}

impl Sealed for Histogram {
    type Config = Buckets;
    const KIND: MetricKind = MetricKind::Histogram;

    fn create(buckets: &Buckets) -> Self {
        Self::with_core(buckets, |core| core)
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped(buckets: &Buckets, series: &Series<'_>) -> Self {
        Self::with_core(buckets, |core| HistogramCore {
            mapped: Mapped::new(&buckets.bounds, series),
            ..core
        })
    }

    fn reset(&self, _: &Buckets) {
        // In multi-process mode the file's counts stay, so that merged totals never go back.
        for count in &*self.core.counts {
            count.store(0, Ordering::Relaxed);
        }
        self.core.sum_bits.store(0f64.to_bits(), Ordering::Relaxed);
        self.core.sum_nanos.store(0, Ordering::Relaxed);
        self.core
            .created
            .store(now_seconds().to_bits(), Ordering::Relaxed);
        if let Some(slots) = self.core.exemplars.get() {
            slots.iter().for_each(ExemplarSlot::clear);
        }
    }

    fn read<'a>(&'a self, buckets: &'a Buckets, scratch: &'a mut Scratch) -> ValueRef<'a> {
        let core = &*self.core;
        scratch.counts.clear();
        let mut cumulative = 0u64;
        // The buckets with acquire, before the sum: every observation counted here is in the
        // sum read below (which may hold a few more, observed meanwhile).
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mapped) = &core.mapped {
            for bucket in &*mapped.buckets {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let count = bucket.get() as u64;
                cumulative += count;
                scratch.counts.push(cumulative);
            }
        }
        if scratch.counts.is_empty() {
            for count in &*core.counts {
                cumulative += count.load(Ordering::Acquire);
                scratch.counts.push(cumulative);
            }
        }
        scratch.exemplars.clear();
        if let (true, Some(slots)) = (scratch.want_exemplars, core.exemplars.get()) {
            scratch
                .exemplars
                .extend(slots.iter().map(ExemplarSlot::get));
        }
        ValueRef::Histogram(HistogramRef {
            bounds: &core.bounds,
            rendered_bounds: Some(&buckets.rendered),
            cumulative: &scratch.counts,
            sum: core.sum(),
            created: Some(f64::from_bits(core.created.load(Ordering::Relaxed))),
            exemplars: &scratch.exemplars,
            extremes: core.extremes.as_ref(),
        })
    }
}

/// The smallest and largest observation of a histogram since the windowed statistics last
/// took them: two `f64`s as bits, updated only when an observation moves one (two loads
/// otherwise).
#[derive(Debug)]
pub(crate) struct Extremes {
    min: AtomicU64,
    max: AtomicU64,
}

impl Extremes {
    fn new() -> Self {
        Self {
            min: AtomicU64::new(f64::INFINITY.to_bits()),
            max: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
        }
    }

    #[inline]
    fn record(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let lower = |cell: &AtomicU64, better: fn(f64, f64) -> bool| {
            let mut current = cell.load(Ordering::Relaxed);
            while better(v, f64::from_bits(current)) {
                match cell.compare_exchange_weak(
                    current,
                    v.to_bits(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => current = now,
                }
            }
        };
        lower(&self.min, |v, min| v < min);
        lower(&self.max, |v, max| v > max);
    }

    /// The extremes since the last call, which starts the next interval; `None` when nothing
    /// was observed. An observation that races the call may have its minimum counted in one
    /// interval and its maximum in the next.
    pub(crate) fn take(&self) -> Option<(f64, f64)> {
        let min = f64::from_bits(self.min.swap(f64::INFINITY.to_bits(), Ordering::Relaxed));
        let max = f64::from_bits(
            self.max
                .swap(f64::NEG_INFINITY.to_bits(), Ordering::Relaxed),
        );
        (min <= max).then_some((min, max))
    }
}

#[cfg(all(test, not(vitals_loom)))]
mod tests {
    use super::*;

    #[test]
    fn infinite_and_nan_observations_are_counted_but_kept_out_of_the_sum() {
        let h = Histogram::create(&Buckets::new([1.0]).unwrap());
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.5, 0.5] {
            h.observe(v);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 2.0, "the sum of the finite observations");
    }

    #[test]
    fn observed_durations_sum_exactly() {
        let h = Histogram::create(&Buckets::default());
        h.observe_duration(Duration::from_millis(100));
        h.observe_duration(Duration::from_millis(200));
        assert_eq!(
            h.sum().to_string(),
            "0.3",
            "not 0.1 + 0.2 = 0.30000000000000004"
        );
        assert_eq!(h.count(), 2);
        // Values and durations add up in one sum.
        h.observe(0.5);
        assert!((h.sum() - 0.8).abs() < 1e-12, "{}", h.sum());
        h.reset(&Buckets::default());
        assert_eq!((h.sum(), h.count()), (0.0, 0));
    }

    fn cumulative(h: &Histogram) -> Vec<u64> {
        let mut scratch = Scratch::default();
        match h.read(&Buckets::default(), &mut scratch) {
            ValueRef::Histogram(r) => r.cumulative_counts().to_vec(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_is_not_below_them() {
        let h = Histogram::create(&Buckets::new([1.0, 2.0]).unwrap());
        for v in [0.5, 1.0, 1.5, 2.0, 2.5, f64::INFINITY, f64::NEG_INFINITY] {
            h.observe(v);
        }
        // le=1: 0.5, 1.0, -inf; le=2: + 1.5, 2.0; +Inf: + 2.5, inf
        assert_eq!(cumulative(&h), vec![3, 5, 7]);
    }

    #[test]
    fn nan_is_counted_but_does_not_poison_the_sum() {
        let h = Histogram::create(&Buckets::new([1.0]).unwrap());
        h.observe(0.5);
        h.observe(f64::NAN);
        assert_eq!(cumulative(&h), vec![1, 2]);
        assert_eq!(h.sum(), 0.5);
        assert_eq!(h.count(), 2);
    }

    #[test]
    fn timer_observes_on_drop_and_not_when_discarded() {
        let h = Histogram::create(&Buckets::default());
        drop(h.start_timer());
        let elapsed = h.start_timer().stop();
        h.start_timer().discard();
        assert_eq!(h.count(), 2);
        assert!(h.sum() >= elapsed.as_secs_f64());
    }
}

/// A loom model of a histogram observed by two threads while a third reads: no count and no
/// part of the sum is lost (the sum is a compare-and-swap loop on the bits of a double), and a
/// read that counts an observation finds it in the sum. Run
/// with the other models (`RUSTFLAGS="--cfg vitals_loom" cargo test -p vitals-core --lib
/// --release loom_`).
#[cfg(all(test, vitals_loom))]
mod loom_models {
    use loom::sync::Arc;

    use super::*;

    #[test]
    fn loom_concurrent_observations_are_all_counted_and_summed() {
        loom::model(|| {
            let histogram = Arc::new(Histogram::create(&Buckets::new([1.0]).unwrap()));
            let writer = {
                let histogram = Arc::clone(&histogram);
                loom::thread::spawn(move || {
                    // Loom explores nothing when a new thread's first step is an atomic load
                    // (tokio-rs/loom#392, open): yield first.
                    loom::thread::yield_now();
                    histogram.observe(0.5);
                })
            };
            let reader = {
                let histogram = Arc::clone(&histogram);
                loom::thread::spawn(move || {
                    loom::thread::yield_now(); // tokio-rs/loom#392, as above
                                               // As a scrape reads: the buckets, then the sum, which holds at least what
                                               // was counted.
                    let (count, sum) = (histogram.count(), histogram.sum());
                    match count {
                        0 => assert!([0.0, 0.5, 2.0, 2.5].contains(&sum), "{sum}"),
                        1 => assert!([0.5, 2.0, 2.5].contains(&sum), "one counted, sum {sum}"),
                        _ => assert_eq!((count, sum), (2, 2.5)),
                    }
                })
            };
            histogram.observe(2.0);
            reader.join().unwrap();
            writer.join().unwrap();
            assert_eq!((histogram.count(), histogram.sum()), (2, 2.5));
        });
    }
}
