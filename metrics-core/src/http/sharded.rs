//! The HTTP recorder's series, split into per-thread shards (see [`crate::util::shard`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::kind::MetricKind;
use crate::metric::sealed::{Scratch, Sealed};
use crate::metric::{bucket_index, Buckets, CounterRef, HistogramRef, Metric, Number, ValueRef};
use crate::util::clock::now_seconds;
use crate::util::shard::{Shard, Slots};

/// An integer counter split into shards; exposed as a plain counter.
#[derive(Debug, Clone)]
pub(crate) struct ShardedCounter {
    pub(super) core: Arc<ShardedCore>,
}

#[derive(Debug)]
pub(super) struct ShardedCore {
    pub(super) slots: Slots,
    /// When the series was created, as `f64` bits of seconds since the Unix epoch.
    pub(super) created: AtomicU64,
    /// In multi-process mode, the cells of this process's file that replace the shards, in
    /// the same order (for a histogram: the buckets, `+Inf` last, then the sum in exposed
    /// units). Shards would only split what the file holds once.
    #[cfg(all(feature = "multiprocess", unix))]
    pub(super) mapped: Option<Box<[crate::multiprocess::Cell]>>,
    /// The latest exemplar of the counter, or of each histogram bucket (`+Inf` last),
    /// allocated with the first: requests without a trace context never touch it.
    pub(super) exemplars: std::sync::OnceLock<Box<[super::trace::TraceSlot]>>,
}

impl ShardedCore {
    pub(super) fn new(width: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Slots::new(width),
            created: AtomicU64::new(now_seconds().to_bits()),
            #[cfg(all(feature = "multiprocess", unix))]
            mapped: None,
            exemplars: std::sync::OnceLock::new(),
        })
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn new_mapped(width: usize, cells: Option<Box<[crate::multiprocess::Cell]>>) -> Arc<Self> {
        Arc::new(Self {
            slots: Slots::new(if cells.is_some() { 1 } else { width }),
            created: AtomicU64::new(now_seconds().to_bits()),
            mapped: cells,
            exemplars: std::sync::OnceLock::new(),
        })
    }

    /// Slot `i`'s total, from the mapped cells in multi-process mode.
    fn total(&self, i: usize) -> u64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cells) = &self.mapped {
            // Whole counts (or a sum read apart, in `sum`), each below 2^53.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return cells.get(i).map_or(0, |c| c.get() as u64);
        }
        self.slots.total(i)
    }

    /// Back to zero; in multi-process mode the file's counts stay, so that merged totals
    /// never go back.
    fn clear(&self) {
        self.slots.fill(0);
        self.restart();
        if let Some(slots) = self.exemplars.get() {
            slots.iter().for_each(super::trace::TraceSlot::clear);
        }
    }

    /// Keeps the traced `value` as the latest exemplar of slot `i` (of `width`).
    fn set_exemplar(&self, width: usize, i: usize, trace: &super::trace::TraceContext, value: f64) {
        let slots = self.exemplars.get_or_init(|| {
            (0..width)
                .map(|_| super::trace::TraceSlot::default())
                .collect()
        });
        if let Some(slot) = slots.get(i) {
            slot.set(trace, value);
        }
    }

    /// The exemplar of each slot, for an encoder that shows them.
    fn exemplars(&self, scratch: &mut Scratch) {
        scratch.exemplars.clear();
        if let (true, Some(slots)) = (scratch.want_exemplars, self.exemplars.get()) {
            scratch
                .exemplars
                .extend(slots.iter().map(|slot| slot.get().map(Arc::new)));
        }
    }

    pub(super) fn created(&self) -> f64 {
        f64::from_bits(self.created.load(Ordering::Relaxed))
    }

    pub(super) fn restart(&self) {
        self.created
            .store(now_seconds().to_bits(), Ordering::Relaxed);
    }
}

impl ShardedCounter {
    /// Adds one in `shard`, the calling thread's [`current`] shard.
    #[inline]
    pub(crate) fn inc(&self, shard: Shard) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cells) = &self.core.mapped {
            return cells[0].add(1.0);
        }
        self.core.slots.add(shard, 0, 1);
    }

    /// Keeps an exemplar of one request in `trace` as the counter's latest.
    pub(crate) fn set_exemplar(&self, trace: &super::trace::TraceContext) {
        self.core.set_exemplar(1, 0, trace, 1.0);
    }

    #[cfg(test)]
    pub(crate) fn get(&self) -> u64 {
        self.core.total(0)
    }
}

impl Metric for ShardedCounter {}

impl Sealed for ShardedCounter {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;

    fn create((): &()) -> Self {
        Self {
            core: ShardedCore::new(1),
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped((): &(), series: &crate::multiprocess::Series<'_>) -> Self {
        let cell = series.cell(crate::multiprocess::FileKind::Counter, "_total", None);
        Self {
            core: ShardedCore::new_mapped(1, cell.map(|c| Box::from([c]))),
        }
    }

    fn reset(&self, (): &()) {
        self.core.clear();
    }

    fn read<'a>(&'a self, (): &'a (), scratch: &'a mut Scratch) -> ValueRef<'a> {
        self.core.exemplars(scratch);
        scratch.exemplar = scratch.exemplars.pop().flatten();
        ValueRef::Counter(CounterRef {
            value: Number::U64(self.core.total(0)),
            created: Some(self.core.created()),
            exemplar: scratch.exemplar.as_deref(),
        })
    }
}

/// A sharded histogram's buckets, and the integer units its observations are recorded in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntegerBuckets {
    pub(crate) buckets: Buckets,
    /// How many recorded units make one exposed unit: [`NANOS_PER_SECOND`] for durations
    /// exposed in seconds, 1 for bytes.
    pub(crate) units: u32,
}

/// Nanoseconds per second: the recorded unit of durations.
pub(crate) const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// A histogram of integer observations (nanoseconds, bytes) split into shards; exposed as a
/// plain histogram with the same buckets, in its exposed unit (seconds, bytes).
///
/// Each shard holds the bucket counts (not cumulative, `+Inf` last) and then the sum, as an
/// integer of recorded units: sums stay exact, and are divided into the exposed unit once, at
/// scrape, so that `_sum` prints as `0.000028689` and not `0.000028689000000000003`.
#[derive(Debug, Clone)]
pub(crate) struct ShardedHistogram {
    pub(super) bounds: Arc<[f64]>,
    /// Recorded units per exposed unit, as the divisor it is used as.
    pub(super) units: f64,
    pub(super) core: Arc<ShardedCore>,
}

impl ShardedHistogram {
    /// Records `n` units (nanoseconds, bytes) in `shard`, the calling thread's
    /// [`current`](crate::util::shard::current) shard, and returns the bucket they fell in.
    #[inline]
    pub(crate) fn observe_units(&self, shard: Shard, n: u64) -> usize {
        #[allow(clippy::cast_precision_loss)] // beyond 2^53 units, a bucket bound is no finer
        let value = n as f64 / self.units;
        let bucket = bucket_index(&self.bounds, value);
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cells) = &self.core.mapped {
            cells[self.bounds.len() + 1].add(value);
            cells[bucket].add(1.0);
            return bucket;
        }
        let slots = &self.core.slots;
        slots.add(shard, self.bounds.len() + 1, n);
        // Last, with release: a scrape that counts the observation sees its sum too.
        slots.add(shard, bucket, 1);
        bucket
    }

    /// Keeps an exemplar of `n` recorded units in `trace` as the latest of `bucket`, the one
    /// [`observe_units`](Self::observe_units) put them in.
    pub(crate) fn set_exemplar(&self, trace: &super::trace::TraceContext, bucket: usize, n: u64) {
        #[allow(clippy::cast_precision_loss)]
        let value = n as f64 / self.units;
        self.core
            .set_exemplar(self.bounds.len() + 1, bucket, trace, value);
    }

    /// Records `v` exposed units, rounded to a recorded unit; NaN is counted in `+Inf` and
    /// left out of the sum.
    #[cfg(test)]
    pub(crate) fn observe(&self, shard: Shard, v: f64) {
        if v.is_nan() {
            self.core.slots.add(shard, self.bounds.len(), 1);
        } else {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            self.observe_units(shard, (v * self.units).round() as u64);
        }
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        (0..=self.bounds.len()).map(|i| self.core.total(i)).sum()
    }
}

impl ShardedHistogram {
    /// The sum in exposed units: one division of the exact integer sum (the closest double
    /// to the true sum), or the mapped cell's in multi-process mode, whose shards are not
    /// as wide as the buckets.
    fn sum(&self) -> f64 {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cells) = &self.core.mapped {
            return cells[self.bounds.len() + 1].get();
        }
        #[allow(clippy::cast_precision_loss)]
        let sum = self.core.slots.total(self.bounds.len() + 1) as f64 / self.units;
        sum
    }
}

impl Metric for ShardedHistogram {}

impl Sealed for ShardedHistogram {
    type Config = IntegerBuckets;
    const KIND: MetricKind = MetricKind::Histogram;

    fn create(config: &IntegerBuckets) -> Self {
        let bounds = Arc::clone(config.buckets.bounds());
        let core = ShardedCore::new(bounds.len() + 2);
        Self {
            bounds,
            units: f64::from(config.units.max(1)),
            core,
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped(config: &IntegerBuckets, series: &crate::multiprocess::Series<'_>) -> Self {
        use crate::multiprocess::FileKind;
        let bounds = Arc::clone(config.buckets.bounds());
        let cells = bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .map(|le| series.cell(FileKind::Histogram, "_bucket", Some(le)))
            .chain([series.cell(FileKind::Histogram, "_sum", None)])
            .collect::<Option<Box<[_]>>>();
        let core = ShardedCore::new_mapped(bounds.len() + 2, cells);
        Self {
            bounds,
            units: f64::from(config.units.max(1)),
            core,
        }
    }

    fn reset(&self, _: &IntegerBuckets) {
        self.core.clear();
    }

    fn read<'a>(&'a self, config: &'a IntegerBuckets, scratch: &'a mut Scratch) -> ValueRef<'a> {
        scratch.counts.clear();
        let mut cumulative = 0u64;
        for i in 0..=self.bounds.len() {
            cumulative = cumulative.wrapping_add(self.core.total(i));
            scratch.counts.push(cumulative);
        }
        self.core.exemplars(scratch);
        let sum = self.sum();
        ValueRef::Histogram(HistogramRef {
            bounds: &self.bounds,
            rendered_bounds: Some(config.buckets.rendered()),
            cumulative: &scratch.counts,
            sum,
            created: Some(self.core.created()),
            exemplars: &scratch.exemplars,
            extremes: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::shard::{current, shard_count, MAX_SHARDS};
    use std::sync::atomic::AtomicBool;

    fn seconds(buckets: Buckets) -> IntegerBuckets {
        IntegerBuckets {
            buckets,
            units: NANOS_PER_SECOND,
        }
    }

    fn read_histogram(h: &ShardedHistogram, buckets: &IntegerBuckets) -> (Vec<u64>, f64) {
        let mut scratch = Scratch::default();
        match h.read(buckets, &mut scratch) {
            ValueRef::Histogram(r) => (r.cumulative_counts().to_vec(), r.sum()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn duration_sums_are_exact_integer_nanoseconds_divided_once() {
        let buckets = seconds(Buckets::new([1e-6, 1.0]).unwrap());
        let histogram = ShardedHistogram::create(&buckets);
        histogram.observe_units(current(), 28_689);
        let (cumulative, sum) = read_histogram(&histogram, &buckets);
        assert_eq!(cumulative, vec![0, 1, 1]);
        assert_eq!(
            sum.to_string(),
            "0.000028689",
            "not 28689 × 1e-9 = 0.000028689000000000003"
        );
        // A 100 ms and a 200 ms request: 0.3, where 0.1 + 0.2 as floats is
        // 0.30000000000000004.
        let histogram = ShardedHistogram::create(&buckets);
        histogram.observe_units(current(), 100_000_000);
        histogram.observe_units(current(), 200_000_000);
        assert_eq!(read_histogram(&histogram, &buckets).1.to_string(), "0.3");
        // Bytes: one unit per exposed unit.
        let bytes = IntegerBuckets {
            buckets: Buckets::new([64.0]).unwrap(),
            units: 1,
        };
        let sizes = ShardedHistogram::create(&bytes);
        sizes.observe_units(current(), 64);
        sizes.observe_units(current(), 65);
        assert_eq!(read_histogram(&sizes, &bytes), (vec![1, 2], 129.0));
    }

    #[test]
    fn every_thread_writes_one_shard_and_reads_add_all_shards_up() {
        let buckets = seconds(Buckets::new([1.0, 2.0]).unwrap());
        let counter = ShardedCounter::create(&());
        let histogram = ShardedHistogram::create(&buckets);
        let threads = 2 * MAX_SHARDS + 1; // more threads than shards: some share one
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    assert!(current().index() < shard_count());
                    assert_eq!(current(), current(), "a thread keeps its shard");
                    for v in [0.5, 1.5, 2.5, f64::NAN] {
                        counter.inc(current());
                        histogram.observe(current(), v);
                    }
                });
            }
        });
        let n = u64::try_from(threads).unwrap();
        assert_eq!(counter.get(), 4 * n);
        assert_eq!(histogram.count(), 4 * n);
        let (cumulative, sum) = read_histogram(&histogram, &buckets);
        // le=1: 0.5; le=2: + 1.5; +Inf: + 2.5 and NaN, which stays out of the sum.
        assert_eq!(cumulative, vec![n, 2 * n, 4 * n]);
        #[allow(clippy::cast_precision_loss)]
        let expected = 4.5 * n as f64;
        assert!((sum - expected).abs() < 1e-9, "{sum} vs {expected}");

        histogram.reset(&buckets);
        counter.reset(&());
        assert_eq!(read_histogram(&histogram, &buckets), (vec![0, 0, 0], 0.0));
        assert_eq!(counter.get(), 0);
    }

    #[test]
    fn shards_given_back_by_exiting_threads_keep_every_write() {
        // Threads come and go (as in a blocking pool) while two stay: each new thread takes
        // a shard that an exited one gave back, or the shared one, and continues from its
        // values with plain stores; no write may be lost on the way.
        let counter = ShardedCounter::create(&());
        let histogram = ShardedHistogram::create(&seconds(Buckets::new([1.0]).unwrap()));
        let stop = AtomicBool::new(false);
        let steady = std::thread::scope(|scope| {
            let steady: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut n = 0_u64;
                        while !stop.load(Ordering::Relaxed) {
                            counter.inc(current());
                            histogram.observe(current(), 0.5);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            for _ in 0..200 {
                std::thread::scope(|inner| {
                    inner.spawn(|| {
                        for _ in 0..1_000 {
                            counter.inc(current());
                            histogram.observe(current(), 2.0);
                        }
                    });
                });
            }
            stop.store(true, Ordering::Relaxed);
            steady.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(counter.get(), steady + 200_000);
        assert_eq!(histogram.count(), steady + 200_000);
        let buckets = seconds(Buckets::new([1.0]).unwrap());
        let (cumulative, sum) = read_histogram(&histogram, &buckets);
        assert_eq!(cumulative, vec![steady, steady + 200_000]);
        #[allow(clippy::cast_precision_loss)]
        let expected = 0.5 * steady as f64 + 400_000.0;
        assert!(
            (sum - expected).abs() < 1e-6 * expected,
            "{sum} vs {expected}"
        );
    }
}
