//! An append-only arena: values never move, readers never lock, and no `unsafe` is needed.
//!
//! Slots live in chunks of doubling size (16, 32, 64, ...), each allocated on first use, so an
//! index maps to its slot with a little arithmetic and a slot's address never changes. One
//! writer at a time (the caller serialises pushes) sets a slot, then publishes the new length
//! with a release store; readers load the length with acquire and see every slot below it.

use std::sync::atomic::Ordering;

// Loom's in loom models (`--cfg vitals_loom`), so that the model below checks this code.
use crate::util::sync::{AtomicUsize, OnceLock};

/// Slots in the first chunk; chunk `k` holds `BASE << k`.
const BASE: usize = 16;
/// Enough chunks for more than `u32::MAX` slots.
const CHUNKS: usize = 29;

pub(crate) struct Arena<T: 'static> {
    chunks: [OnceLock<Box<[OnceLock<T>]>>; CHUNKS],
    len: AtomicUsize,
}

impl<T: 'static> Default for Arena<T> {
    fn default() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            len: AtomicUsize::new(0),
        }
    }
}

/// The chunk holding slot `index`, and the slot's offset in it.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    let chunk = (index / BASE + 1).ilog2() as usize;
    (chunk, index - BASE * ((1 << chunk) - 1))
}

impl<T: 'static> Arena<T> {
    /// The number of published values.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The value at `index`, if it is published.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        let (chunk, offset) = locate(index);
        self.chunks.get(chunk)?.get()?.get(offset)?.get()
    }

    /// Appends `value` and returns its index, or gives it back when the arena is full.
    /// Callers must not push from two threads at once.
    pub(crate) fn push(&self, value: T) -> Result<usize, T> {
        let index = self.len.load(Ordering::Relaxed);
        let (chunk, offset) = locate(index);
        let Some(slots) = self.chunks.get(chunk) else {
            return Err(value);
        };
        let slots = slots.get_or_init(|| (0..BASE << chunk).map(|_| OnceLock::new()).collect());
        slots[offset].set(value)?;
        self.len.store(index + 1, Ordering::Release);
        Ok(index)
    }

    /// Every published value, in the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

#[cfg(all(test, not(vitals_loom)))]
mod tests {
    use super::*;

    #[test]
    fn indexes_map_to_chunks_without_gaps_or_overlaps() {
        let mut expected = (0, 0);
        for index in 0..10_000 {
            assert_eq!(locate(index), expected, "index {index}");
            expected.1 += 1;
            if expected.1 == BASE << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
        assert!(locate(u32::MAX as usize).0 < CHUNKS);
    }

    #[test]
    fn pushed_values_keep_their_address_and_order() {
        let arena = Arena::default();
        let first = arena.push(String::from("first")).unwrap();
        let address = std::ptr::from_ref(arena.get(first).unwrap());
        for i in 0..5_000 {
            assert_eq!(arena.push(i.to_string()).unwrap(), i + 1);
        }
        assert!(std::ptr::eq(address, arena.get(first).unwrap()));
        assert_eq!(arena.len(), 5_001);
        assert_eq!(arena.get(5_001), None);
        let all: Vec<&String> = arena.iter().collect();
        assert_eq!(all[0], "first");
        assert_eq!(all[4_000], "3999");
    }

    #[test]
    fn readers_see_every_published_value_while_a_writer_pushes() {
        let arena = std::sync::Arc::new(Arena::default());
        let writer = {
            let arena = std::sync::Arc::clone(&arena);
            std::thread::spawn(move || {
                for i in 0..100_000u32 {
                    arena.push(i).unwrap();
                }
            })
        };
        let mut reads = 0;
        while reads < 1_000 {
            let len = arena.len();
            for i in (0..len).step_by(97) {
                assert_eq!(arena.get(i), Some(&u32::try_from(i).unwrap()));
            }
            reads += 1;
        }
        writer.join().unwrap();
        assert_eq!(arena.len(), 100_000);
    }
}

/// A loom model of the arena: a reader never sees a published length without every value
/// below it, while the writer pushes. Run with the shard models
/// (`RUSTFLAGS="--cfg vitals_loom" cargo test -p vitals-core --lib --release loom_`).
#[cfg(all(test, vitals_loom))]
mod loom_models {
    use loom::sync::Arc;

    use super::*;

    #[test]
    fn loom_a_published_length_comes_with_every_value_below_it() {
        loom::model(|| {
            let arena = Arc::new(Arena::default());
            let reader = {
                let arena = Arc::clone(&arena);
                loom::thread::spawn(move || {
                    // Loom explores nothing when a new thread's first step is an atomic load
                    // (tokio-rs/loom#392, open): yield first.
                    loom::thread::yield_now();
                    // The newest first: it is the one a length published too early would lack.
                    let len = arena.len();
                    for i in (0..len).rev() {
                        assert_eq!(arena.get(i), Some(&i), "index {i} below length {len}");
                    }
                })
            };
            arena.push(0usize).unwrap();
            arena.push(1).unwrap();
            reader.join().unwrap();
            assert_eq!((arena.len(), arena.get(1)), (2, Some(&1)));
        });
    }
}
