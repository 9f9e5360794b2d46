//! The templates the built-in rules learned: a bounded table that busy templates get into and
//! stay in, whatever a scanner sends.
//!
//! The table keeps no strings: a template is learned when its 64-bit hash, keyed at random
//! per templater (SipHash-1-3, a keyed pseudo-random function), is in the table. Two templates
//! share a hash with a chance of 2^-64 per pair, which no request can raise without knowing
//! the key. The table is set-associative: a hash picks one set of [`WAYS`] slots, so a lookup
//! reads at most that many slots, with atomic loads and no lock.
//!
//! A template takes a free slot of its set at once. Once the set is full, a candidate replaces
//! the set's least used template only when it has been asked for more often, and recently
//! at least twice (TinyLFU's rule, with its doorkeeper): candidates are counted in a count-min sketch,
//! learned templates by their hits, and both are halved every [`AGING_PERIOD`] misses per slot
//! so that the past fades. A scanner's paths are each asked for once, so they never push out
//! a template, and a route that arrives after the scanner filled its set gets in on its second
//! request.
//!
//! The doorkeeper is exact where the sketch is not: it remembers the hashes of recent
//! candidates, so a template asked for once never passes it, however the sketch's counters
//! collide.
//!
//! Bounds: at most `cap` templates at once (rounded up to whole sets of [`WAYS`]); per slot,
//! 16 bytes, 16 sketch counters of 4 bytes and 8 doorkeeper entries of 8 bytes: 144 bytes,
//! whatever is asked for.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Slots per set: a lookup compares at most this many templates.
pub(super) const WAYS: usize = 8;
/// Misses per slot between two halvings of every count.
const AGING_PERIOD: u64 = 8;
/// Sketch counters per slot.
const SKETCH_PER_SLOT: usize = 16;
/// Entries per slot of the doorkeeper, which remembers the hashes of recent candidates.
const RECENT_PER_SLOT: usize = 8;

/// What is known of a template that is not learned.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// The doorkeeper remembers it: asked for before, recently. Exact, but forgetful: a
    /// candidate whose entry another took must be asked for again.
    asked_before: bool,
    /// How often it was asked for, recently: an overestimate only when other candidates share
    /// both its sketch counters.
    estimate: u64,
}

impl Candidate {
    /// Whether it replaces a learned template used `hits` times: a template asked for once is
    /// never let in over another, so a scanner's one-off paths never displace anything.
    fn beats(self, hits: u64) -> bool {
        self.asked_before && self.estimate > hits
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// The learned template's hash, never 0; 0 while the slot is free.
    hash: AtomicU64,
    hits: AtomicU64,
}

pub(super) struct LearnedTemplates {
    key: RandomState,
    slots: Box<[Slot]>,
    sketch: Box<[AtomicU32]>,
    /// The doorkeeper: the last candidate hash seen at each position.
    recent: Box<[AtomicU64]>,
    misses: AtomicU64,
    /// Serialises writers (taking or replacing a slot); readers never take it.
    admission: Mutex<()>,
}

impl std::fmt::Debug for LearnedTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearnedTemplates")
            .field("slots", &self.slots.len())
            .field("learned", &self.learned())
            .finish_non_exhaustive()
    }
}

impl LearnedTemplates {
    /// A table for about `cap` templates (rounded up to whole sets), which is at least 1.
    pub(super) fn new(cap: usize) -> Self {
        let slots = cap.max(1).div_ceil(WAYS) * WAYS;
        Self {
            key: RandomState::new(),
            slots: (0..slots).map(|_| Slot::default()).collect(),
            sketch: (0..slots * SKETCH_PER_SLOT)
                .map(|_| AtomicU32::new(0))
                .collect(),
            recent: (0..slots * RECENT_PER_SLOT)
                .map(|_| AtomicU64::new(0))
                .collect(),
            misses: AtomicU64::new(0),
            admission: Mutex::new(()),
        }
    }

    /// Whether `template` is, or now becomes, a learned template.
    pub(super) fn admit(&self, template: &str) -> bool {
        let hash = self.key.hash_one(template).max(1);
        let set = self.set(hash);
        if let Some(slot) = set.iter().find(|s| s.hash.load(Ordering::Relaxed) == hash) {
            slot.hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let candidate = self.count_miss(hash);
        if set.iter().all(|s| s.hash.load(Ordering::Relaxed) != 0)
            && !candidate.beats(Self::weakest(set).1)
        {
            return false;
        }
        self.admit_slow(hash, candidate)
    }

    /// Under the admission lock: takes a free slot of the set, or the least used one if the
    /// candidate was asked for more often.
    #[cold]
    fn admit_slow(&self, hash: u64, candidate: Candidate) -> bool {
        let _admitting = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let set = self.set(hash);
        // Another thread may have admitted it meanwhile.
        if set.iter().any(|s| s.hash.load(Ordering::Relaxed) == hash) {
            return true;
        }
        let victim = match set.iter().find(|s| s.hash.load(Ordering::Relaxed) == 0) {
            Some(free) => free,
            None => match Self::weakest(set) {
                (victim, hits) if candidate.beats(hits) => victim,
                _ => return false,
            },
        };
        victim.hits.store(candidate.estimate, Ordering::Relaxed);
        victim.hash.store(hash, Ordering::Relaxed);
        true
    }

    fn set(&self, hash: u64) -> &[Slot] {
        let sets = self.slots.len() / WAYS;
        #[allow(clippy::cast_possible_truncation)] // the remainder is below `sets`, a usize
        let set = (hash % sets as u64) as usize;
        &self.slots[set * WAYS..(set + 1) * WAYS]
    }

    /// The set's least used slot and its hits.
    fn weakest(set: &[Slot]) -> (&Slot, u64) {
        set.iter()
            .map(|s| (s, s.hits.load(Ordering::Relaxed)))
            .min_by_key(|&(_, hits)| hits)
            .unwrap_or((&set[0], 0))
    }

    /// Counts one request for a template that is not learned.
    fn count_miss(&self, hash: u64) -> Candidate {
        let recent = self.recent.len() as u64;
        #[allow(clippy::cast_possible_truncation)] // a remainder below the table's length
        let asked_before =
            self.recent[((hash >> 16) % recent) as usize].swap(hash, Ordering::Relaxed) == hash;
        let n = self.sketch.len() as u64;
        #[allow(clippy::cast_possible_truncation)] // remainders below the sketch's length
        let counters = [
            (hash % n) as usize,
            ((hash >> 32).rotate_left(7) % n) as usize,
        ];
        let estimate = counters
            .iter()
            .map(|&i| {
                self.sketch[i]
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1)
            })
            .min()
            .unwrap_or(1);
        let misses = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
        if misses % (AGING_PERIOD * self.slots.len() as u64) == 0 {
            self.age();
        }
        Candidate {
            asked_before,
            estimate: u64::from(estimate),
        }
    }

    /// Halves every count, so that what was asked for long ago weighs less than what is asked
    /// for now.
    #[cold]
    fn age(&self) {
        for counter in &*self.sketch {
            // A racing increment may be lost: the counts are estimates.
            counter.store(counter.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
        }
        for slot in &*self.slots {
            slot.hits
                .store(slot.hits.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
        }
    }

    /// How many templates are learned now.
    pub(super) fn learned(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.hash.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Whether `template` is learned now (without counting a request for it).
    #[cfg(test)]
    pub(super) fn holds(&self, template: &str) -> bool {
        let hash = self.key.hash_one(template).max(1);
        self.set(hash)
            .iter()
            .any(|s| s.hash.load(Ordering::Relaxed) == hash)
    }
}
