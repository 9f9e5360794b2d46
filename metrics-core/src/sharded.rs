//! Series split into per-thread shards, for the few series that every request writes.
//!
//! A counter that all worker threads add to is one cache line passed from core to core: each
//! write waits for the line to arrive, tens to hundreds of nanoseconds under load, which is
//! more than the rest of recording a request. The HTTP recorder's series are written several
//! times per request by every worker, so each of them keeps one set of values per shard,
//! every shard on cache lines of its own. A thread always writes its own shard; a scrape adds
//! the shards up.
//!
//! A thread's shard is given out round-robin when it first records, so that the worker
//! threads of a server (started together, before any other thread records) land on
//! different shards. There are as many shards as cores, up to [`MAX_SHARDS`]: memory grows
//! with the shard count, and a shard shared by two threads is still correct, only slower.
//!
//! A scrape reads the shards one after another while requests go on, so a histogram read can
//! miss an observation that lands during the read; its count is derived from its buckets, so
//! `_count` always equals the `+Inf` bucket, and the next scrape catches up.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::exemplar::now_seconds;
use crate::histogram::{bucket_index, Buckets};
use crate::metric::sealed::{Scratch, Sealed};
use crate::metric::{CachePadded, Metric};
use crate::value::{CounterRef, HistogramRef, MetricKind, Number, ValueRef};

/// The most shards a series is split into, whatever the core count.
pub(crate) const MAX_SHARDS: usize = 8;

/// How many shards every sharded series has: the core count rounded up to a power of two,
/// at most [`MAX_SHARDS`].
pub(crate) fn shards() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// The shard the current thread writes to.
#[inline]
pub(crate) fn current() -> usize {
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| match shard.get() {
        usize::MAX => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let assigned = NEXT.fetch_add(1, Ordering::Relaxed) % shards();
            shard.set(assigned);
            assigned
        }
        assigned => assigned,
    })
}

/// Values per cache line pair (128 bytes, the unit adjacent-line prefetching moves).
const PER_LINE: usize = 16;

/// A cache line pair of values.
type Line = CachePadded<[AtomicU64; PER_LINE]>;

/// `width` values per shard; each shard on cache lines of its own.
#[derive(Debug)]
pub(crate) struct Slots {
    lines: Box<[Line]>,
    lines_per_shard: usize,
}

impl Slots {
    pub(crate) fn new(width: usize) -> Self {
        let lines_per_shard = width.div_ceil(PER_LINE).max(1);
        Self {
            lines: (0..lines_per_shard * shards())
                .map(|_| Line::default())
                .collect(),
            lines_per_shard,
        }
    }

    /// Value `i` of `shard` (the writer's [`current`] shard).
    #[inline]
    pub(crate) fn at(&self, shard: usize, i: usize) -> &AtomicU64 {
        &self.lines[shard * self.lines_per_shard + i / PER_LINE].0[i % PER_LINE]
    }

    /// Value `i` added up over the shards (wrapping, so that signed values stored as their
    /// two's complement add up right too). Acquire: a writer's earlier writes (with release)
    /// are seen too.
    pub(crate) fn total(&self, i: usize) -> u64 {
        (0..self.lines.len() / self.lines_per_shard)
            .map(|shard| self.at(shard, i).load(Ordering::Acquire))
            .fold(0, u64::wrapping_add)
    }

    /// Every value of every shard, set to `value`.
    pub(crate) fn fill(&self, value: u64) {
        for line in &*self.lines {
            for v in &line.0 {
                v.store(value, Ordering::Relaxed);
            }
        }
    }

    /// Value `i` of every shard, set to `value`.
    fn fill_at(&self, i: usize, value: u64) {
        for shard in 0..self.lines.len() / self.lines_per_shard {
            self.at(shard, i).store(value, Ordering::Relaxed);
        }
    }

    /// Value `i` of every shard, read as `f64` bits, added up.
    fn total_f64(&self, i: usize) -> f64 {
        (0..self.lines.len() / self.lines_per_shard)
            .map(|shard| f64::from_bits(self.at(shard, i).load(Ordering::Relaxed)))
            .sum()
    }
}

/// An integer counter split into shards; exposed as a plain counter.
#[derive(Debug, Clone)]
pub(crate) struct ShardedCounter {
    core: Arc<ShardedCore>,
}

#[derive(Debug)]
struct ShardedCore {
    slots: Slots,
    /// When the series was created, as `f64` bits of seconds since the Unix epoch.
    created: AtomicU64,
}

impl ShardedCore {
    fn new(width: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Slots::new(width),
            created: AtomicU64::new(now_seconds().to_bits()),
        })
    }

    fn created(&self) -> f64 {
        f64::from_bits(self.created.load(Ordering::Relaxed))
    }

    fn restart(&self) {
        self.created
            .store(now_seconds().to_bits(), Ordering::Relaxed);
    }
}

impl ShardedCounter {
    /// Adds one in `shard`, the calling thread's [`current`] shard.
    #[inline]
    pub(crate) fn inc(&self, shard: usize) {
        self.core.slots.at(shard, 0).fetch_add(1, Ordering::Relaxed);
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
    bounds: Arc<[f64]>,
    core: Arc<ShardedCore>,
}

impl ShardedHistogram {
    /// Records `v` in `shard`, the calling thread's [`current`] shard.
    #[inline]
    pub(crate) fn observe(&self, shard: usize, v: f64) {
        let slots = &self.core.slots;
        slots
            .at(shard, bucket_index(&self.bounds, v))
            .fetch_add(1, Ordering::Relaxed);
        if !v.is_nan() {
            // The shard is rarely written by another thread: the compare-and-swap of the
            // sum seldom retries.
            crate::atomic::add_f64(slots.at(shard, self.bounds.len() + 1), v);
        }
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
                    assert!(current() < shards());
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
    fn signed_values_add_up_across_shards() {
        let slots = Slots::new(1);
        std::thread::scope(|scope| {
            scope.spawn(|| slots.at(current(), 0).fetch_add(3, Ordering::Relaxed));
        });
        std::thread::scope(|scope| {
            // Taken out on other threads than the one that added: negative shards.
            for _ in 0..3 {
                scope.spawn(|| {
                    slots
                        .at(current(), 0)
                        .fetch_add(u64::MAX, Ordering::Relaxed)
                });
            }
        });
        #[allow(clippy::cast_possible_wrap)]
        let total = slots.total(0) as i64;
        assert_eq!(total, 0);
    }

    #[test]
    fn shards_sit_on_cache_lines_of_their_own() {
        let slots = Slots::new(PER_LINE + 1); // two line pairs per shard
        assert_eq!(slots.lines.len(), 2 * shards());
        for shard in 1..shards() {
            let previous = std::ptr::from_ref(slots.at(shard - 1, PER_LINE)) as usize;
            let first = std::ptr::from_ref(slots.at(shard, 0)) as usize;
            assert!(first - previous >= 128 - 8, "shard {shard} shares a line");
            assert_eq!(first % 128, 0);
        }
    }
}
