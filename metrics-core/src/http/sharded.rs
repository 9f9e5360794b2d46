//! The HTTP recorder's series, split into per-thread shards (see [`crate::util::shard`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::kind::MetricKind;
use crate::metric::sealed::{Scratch, Sealed};
use crate::metric::Metric;
use crate::metric::{bucket_index, Buckets};
use crate::metric::{CounterRef, HistogramRef, Number, ValueRef};
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
}

impl ShardedCore {
    pub(super) fn new(width: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Slots::new(width),
            created: AtomicU64::new(now_seconds().to_bits()),
        })
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
        self.core.slots.add(shard, 0, 1);
    }

    #[cfg(test)]
    pub(crate) fn get(&self) -> u64 {
        self.core.slots.total(0)
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

    fn reset(&self, (): &()) {
        self.core.slots.fill(0);
        self.core.restart();
    }

    fn read<'a>(&'a self, (): &'a (), _: &'a mut Scratch) -> ValueRef<'a> {
        ValueRef::Counter(CounterRef {
            value: Number::U64(self.core.slots.total(0)),
            created: Some(self.core.created()),
            exemplar: None,
        })
    }
}

/// A histogram split into shards; exposed as a plain histogram with the same buckets (and
/// the same treatment of NaN: counted in `+Inf`, left out of the sum).
///
/// Each shard holds the bucket counts (not cumulative, `+Inf` last) and then the sum.
#[derive(Debug, Clone)]
pub(crate) struct ShardedHistogram {
    pub(super) bounds: Arc<[f64]>,
    pub(super) core: Arc<ShardedCore>,
}

impl ShardedHistogram {
    /// Records `v` in `shard`, the calling thread's [`current`] shard.
    #[inline]
    pub(crate) fn observe(&self, shard: Shard, v: f64) {
        let slots = &self.core.slots;
        if !v.is_nan() {
            slots.add_f64(shard, self.bounds.len() + 1, v);
        }
        // Last, with release: a scrape that counts the observation sees its sum too.
        slots.add(shard, bucket_index(&self.bounds, v), 1);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        (0..=self.bounds.len())
            .map(|i| self.core.slots.total(i))
            .sum()
    }
}

impl Metric for ShardedHistogram {}

impl Sealed for ShardedHistogram {
    type Config = Buckets;
    const KIND: MetricKind = MetricKind::Histogram;

    fn create(buckets: &Buckets) -> Self {
        let bounds = Arc::clone(buckets.bounds());
        let core = ShardedCore::new(bounds.len() + 2);
        core.slots.fill_at(bounds.len() + 1, 0f64.to_bits());
        Self { bounds, core }
    }

    fn reset(&self, _: &Buckets) {
        self.core.slots.fill(0);
        self.core
            .slots
            .fill_at(self.bounds.len() + 1, 0f64.to_bits());
        self.core.restart();
    }

    fn read<'a>(&'a self, buckets: &'a Buckets, scratch: &'a mut Scratch) -> ValueRef<'a> {
        let slots = &self.core.slots;
        scratch.counts.clear();
        let mut cumulative = 0u64;
        for i in 0..=self.bounds.len() {
            cumulative = cumulative.wrapping_add(slots.total(i));
            scratch.counts.push(cumulative);
        }
        scratch.exemplars.clear();
        ValueRef::Histogram(HistogramRef {
            bounds: &self.bounds,
            rendered_bounds: Some(buckets.rendered()),
            cumulative: &scratch.counts,
            sum: slots.total_f64(self.bounds.len() + 1),
            created: Some(self.core.created()),
            exemplars: &scratch.exemplars,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::shard::{current, shard_count, MAX_SHARDS};
    use std::sync::atomic::AtomicBool;

    fn read_histogram(h: &ShardedHistogram, buckets: &Buckets) -> (Vec<u64>, f64) {
        let mut scratch = Scratch::default();
        match h.read(buckets, &mut scratch) {
            ValueRef::Histogram(r) => (r.cumulative_counts().to_vec(), r.sum()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_thread_writes_one_shard_and_reads_add_all_shards_up() {
        let buckets = Buckets::new([1.0, 2.0]).unwrap();
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
        let histogram = ShardedHistogram::create(&Buckets::new([1.0]).unwrap());
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
        let buckets = Buckets::new([1.0]).unwrap();
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
