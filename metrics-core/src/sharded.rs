//! Series split into per-thread shards, for the few series that every request writes.
//!
//! A counter that all worker threads add to is one cache line passed from core to core: each
//! write waits for the line to arrive, tens to hundreds of nanoseconds under load, which is
//! more than the rest of recording a request. The HTTP recorder's series are written several
//! times per request by every worker, so each of them keeps one set of values per shard,
//! every shard on cache lines of its own. A thread always writes its own shard; a scrape adds
//! the shards up.
//!
//! **Owned shards.** Even on a line no other core touches, an atomic read-modify-write (a
//! `lock`-prefixed instruction on x86) costs about 20 cycles, and a request makes several. So
//! a thread takes a shard for itself when it first records: while it owns the shard, no other
//! thread writes there, and its writes are a plain load and store. There are as many owned
//! shards as cores, up to [`MAX_SHARDS`] (memory grows with the shard count); a thread gives
//! its shard back when it exits, and the next thread to take it continues from its values
//! (taking and giving back are an acquire and a release, so no write is lost in between).
//! Threads that find every owned shard taken (more threads record than there are cores, or a
//! thread records while its thread-locals are being destroyed) write one more shard that they
//! share, with atomic read-modify-writes: still correct, only slower.
//!
//! Only the owner writes an owned shard; a series is reset only when a removed series is
//! brought back, and the families of sharded series (the HTTP recorder's, which no caller can
//! reach) never remove series, so no reset races with an owner's store.
//!
//! A scrape reads the shards one after another while requests go on, so a histogram read can
//! miss an observation that lands during the read; its count is derived from its buckets, so
//! `_count` always equals the `+Inf` bucket, and the next scrape catches up.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::exemplar::now_seconds;
use crate::histogram::{bucket_index, Buckets};
use crate::metric::sealed::{Scratch, Sealed};
use crate::metric::{CachePadded, Metric};
use crate::value::{CounterRef, HistogramRef, MetricKind, Number, ValueRef};

/// The most owned shards a series has, whatever the core count.
pub(crate) const MAX_SHARDS: usize = 8;

/// How many shards threads can own: the core count rounded up to a power of two, at most
/// [`MAX_SHARDS`].
pub(crate) fn shards() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// How many shards every sharded series has: the owned ones and the one that threads
/// without an owned shard share (the last).
pub(crate) fn shard_count() -> usize {
    shards() + 1
}

/// Where the current thread writes: a shard's index, and whether the thread owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard(usize);

/// Set in a [`Shard`] that several threads write.
const SHARED: usize = 1 << (usize::BITS - 1);
/// A thread that has not recorded yet.
const UNASSIGNED: usize = usize::MAX;

impl Shard {
    /// The shard that threads without an owned one write, atomically.
    fn shared() -> Self {
        Self(shards() | SHARED)
    }

    /// The shard's index, below [`shard_count`].
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0 & !SHARED
    }

    /// Whether the current thread is the only one that writes this shard.
    #[inline]
    fn owned(self) -> bool {
        self.0 & SHARED == 0
    }
}

/// Which owned shards a thread holds.
static OWNERS: [AtomicBool; MAX_SHARDS] = [const { AtomicBool::new(false) }; MAX_SHARDS];

/// A thread's shard; gives an owned shard back when the thread exits.
struct Claim(Cell<usize>);

impl Claim {
    /// Takes a free owned shard, starting the search at a different one for each thread so
    /// that threads started together spread out; the shared shard if none is free.
    #[cold]
    fn assign(&self) -> Shard {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = shards();
        let start = NEXT.fetch_add(1, Ordering::Relaxed);
        let shard = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| {
                // Acquire: the previous owner's writes (before its release) are seen.
                OWNERS[i]
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            })
            .map_or_else(Shard::shared, Shard);
        self.0.set(shard.0);
        shard
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let shard = Shard(self.0.replace(UNASSIGNED));
        if shard.0 != UNASSIGNED && shard.owned() {
            // Release: every write of this thread happens before the next owner's first.
            OWNERS[shard.index()].store(false, Ordering::Release);
        }
    }
}

/// The shard the current thread writes to.
#[inline]
pub(crate) fn current() -> Shard {
    thread_local! {
        static CLAIM: Claim = const { Claim(Cell::new(UNASSIGNED)) };
    }
    CLAIM
        .try_with(|claim| match claim.0.get() {
            UNASSIGNED => claim.assign(),
            shard => Shard(shard),
        })
        // The thread's locals are being destroyed (a guard dropped by another thread-local's
        // destructor): its shard may be given back already.
        .unwrap_or_else(|_| Shard::shared())
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
            lines: (0..lines_per_shard * shard_count())
                .map(|_| Line::default())
                .collect(),
            lines_per_shard,
        }
    }

    /// Value `i` of the shard at `index`.
    #[inline]
    fn at(&self, index: usize, i: usize) -> &AtomicU64 {
        &self.lines[index * self.lines_per_shard + i / PER_LINE].0[i % PER_LINE]
    }

    /// Adds `n` (wrapping: adding a two's complement subtracts) to value `i` of `shard`, the
    /// writer's [`current`] shard. Release: a reader that sees this write sees the writer's
    /// earlier ones too.
    #[inline]
    pub(crate) fn add(&self, shard: Shard, i: usize, n: u64) {
        let cell = self.at(shard.index(), i);
        if shard.owned() {
            // Only this thread writes here: no read-modify-write needed.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Release,
            );
        } else {
            cell.fetch_add(n, Ordering::Release);
        }
    }

    /// Adds `v` to value `i` of `shard` read as `f64` bits.
    #[inline]
    pub(crate) fn add_f64(&self, shard: Shard, i: usize, v: f64) {
        let cell = self.at(shard.index(), i);
        if shard.owned() {
            let sum = f64::from_bits(cell.load(Ordering::Relaxed)) + v;
            cell.store(sum.to_bits(), Ordering::Relaxed);
        } else {
            crate::atomic::add_f64(cell, v);
        }
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
    bounds: Arc<[f64]>,
    core: Arc<ShardedCore>,
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

    #[test]
    fn no_two_threads_own_the_same_shard() {
        // Claims as threads make them; more than there are owned shards.
        let claims: Vec<Claim> = (0..=shards())
            .map(|_| Claim(Cell::new(UNASSIGNED)))
            .collect();
        let shards_taken: Vec<Shard> = claims.iter().map(Claim::assign).collect();
        let mut owned: Vec<usize> = shards_taken
            .iter()
            .filter(|s| s.owned())
            .map(|s| s.index())
            .collect();
        let n = owned.len();
        owned.sort_unstable();
        owned.dedup();
        assert_eq!(owned.len(), n, "an owned shard went to two claims");
        assert!(owned
            .iter()
            .all(|&i| i < shards() && OWNERS[i].load(Ordering::Relaxed)));
        for shard in shards_taken.iter().filter(|s| !s.owned()) {
            assert_eq!(
                shard.index(),
                shards(),
                "threads without one share the last shard"
            );
        }
        drop(claims);
    }

    #[test]
    fn signed_values_add_up_across_shards() {
        let slots = Slots::new(1);
        std::thread::scope(|scope| {
            scope.spawn(|| slots.add(current(), 0, 3));
        });
        std::thread::scope(|scope| {
            // Taken out on other threads than the one that added: negative shards.
            for _ in 0..3 {
                scope.spawn(|| slots.add(current(), 0, u64::MAX));
            }
        });
        #[allow(clippy::cast_possible_wrap)]
        let total = slots.total(0) as i64;
        assert_eq!(total, 0);
    }

    #[test]
    fn shards_sit_on_cache_lines_of_their_own() {
        let slots = Slots::new(PER_LINE + 1); // two line pairs per shard
        assert_eq!(slots.lines.len(), 2 * shard_count());
        for shard in 1..shard_count() {
            let previous = std::ptr::from_ref(slots.at(shard - 1, PER_LINE)) as usize;
            let first = std::ptr::from_ref(slots.at(shard, 0)) as usize;
            assert!(first - previous >= 128 - 8, "shard {shard} shares a line");
            assert_eq!(first % 128, 0);
        }
    }
}
