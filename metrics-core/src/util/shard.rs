//! Values split into per-thread shards, for the few series that every request or call writes
//! (the HTTP recorder's and `#[instrumented]`'s).
//!
//! A counter that all worker threads add to is one cache line passed from core to core: each
//! write waits for the line to arrive, tens to hundreds of nanoseconds under load, which is
//! more than the rest of recording a request. The HTTP recorder's series are written several
//! times per request by every worker, so each of them keeps one set of values per shard,
//! every shard on cache lines of its own. A thread always writes its own shard; a scrape adds
//! the shards up.
//!
//! **Owned shards.** Even on a line no other core touches, an atomic read-modify-write (a
//! `lock`-prefixed instruction on x86) costs tens of cycles, and a request makes several. So
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::util::padded::CachePadded;
// The slots' atomics are loom's in loom models (`--cfg vitals_loom`), so that the models below check
// the orderings the real code uses.
use crate::util::sync::AtomicU64;

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
                .map(|_| CachePadded(std::array::from_fn(|_| AtomicU64::new(0))))
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
}

#[cfg(all(test, not(vitals_loom)))]
mod tests {
    use super::*;

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

/// Loom models of the sharded slots: every interleaving of a few threads through the real
/// `Slots::add` and `Slots::total`. Run with
/// `RUSTFLAGS="--cfg vitals_loom" cargo test -p vitals-core --lib --release loom_`.
///
/// What they prove, and what not: a write lost between two threads (writing the shared shard
/// with a plain load and store, or an owner that does not wait for the hand-over) fails them.
/// Loom models relaxed atomics only in part, so weakening the release and acquire orderings
/// to relaxed does not fail them; those orderings rest on the argument in the comments.
#[cfg(all(test, vitals_loom))]
mod loom_models {
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;

    use super::*;

    /// A shard index that is owned (written with a plain load and store).
    const OWNED: Shard = Shard(0);

    #[test]
    fn loom_a_reader_that_counts_an_observation_sees_its_sum() {
        // The HTTP histogram's write order: the sum first, then the bucket with release; a
        // scrape reads the buckets (acquire) before the sum.
        loom::model(|| {
            let slots = Arc::new(Slots::new(2));
            let writer = {
                let slots = Arc::clone(&slots);
                loom::thread::spawn(move || {
                    // Loom explores nothing when a new thread's first step is an atomic load
                    // (tokio-rs/loom#392, open), as an owned write's is: yield first.
                    loom::thread::yield_now();
                    slots.add(OWNED, 1, 7); // sum
                    slots.add(OWNED, 0, 1); // bucket
                })
            };
            let count = slots.total(0);
            let sum = slots.total(1);
            if count == 1 {
                assert_eq!(sum, 7, "a counted observation without its sum");
            }
            writer.join().unwrap();
            assert_eq!((slots.total(0), slots.total(1)), (1, 7));
        });
    }

    #[test]
    fn loom_an_owned_shard_handed_over_loses_no_write() {
        // A thread gives its shard back with a release store of its owner flag; the next
        // takes it with an acquire compare-exchange, as `Claim` does, and continues from its
        // values with plain loads and stores. Meanwhile a thread without a shard writes the
        // shared one with read-modify-writes.
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            let owner = Arc::new(AtomicBool::new(true));
            let first = {
                let (slots, owner) = (Arc::clone(&slots), Arc::clone(&owner));
                loom::thread::spawn(move || {
                    loom::thread::yield_now(); // tokio-rs/loom#392, as above
                    slots.add(OWNED, 0, 1);
                    owner.store(false, Ordering::Release);
                })
            };
            let next = {
                let (slots, owner) = (Arc::clone(&slots), Arc::clone(&owner));
                loom::thread::spawn(move || {
                    loom::thread::yield_now(); // tokio-rs/loom#392, as above
                    while owner
                        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                    {
                        loom::thread::yield_now();
                    }
                    slots.add(OWNED, 0, 1);
                })
            };
            slots.add(Shard::shared(), 0, 1);
            first.join().unwrap();
            next.join().unwrap();
            assert_eq!(slots.total(0), 3);
        });
    }

    #[test]
    fn loom_threads_sharing_the_shared_shard_lose_no_write() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let slots = Arc::clone(&slots);
                    loom::thread::spawn(move || {
                        loom::thread::yield_now(); // tokio-rs/loom#392, as above
                        slots.add(Shard::shared(), 0, u64::MAX);
                    })
                })
                .collect();
            slots.add(OWNED, 0, 2);
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(slots.total(0), 0, "signed values add up across shards");
        });
    }
}
