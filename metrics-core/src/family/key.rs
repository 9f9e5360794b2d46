//! Label sets as the index hashes and compares them, and where a series sits.

use std::hash::Hasher;

use super::{LabelSet, LabelText};

/// A label set in a form the index can hash and compare without allocating.
///
/// Values are hashed as their raw bytes (foldhash mixes each write's length in). The hash only
/// has to spread label sets well: a lookup always compares the values themselves.
pub(crate) trait Key {
    fn hash_into<H: Hasher>(&self, hasher: &mut H);
    fn matches(&self, stored: &LabelText) -> bool;
    fn visit(&self, f: &mut dyn FnMut(&str));
}

/// Values in the order of the family's label names.
pub(crate) struct Ordered<'a>(pub(crate) &'a [&'a str]);

impl Key for Ordered<'_> {
    #[inline]
    fn hash_into<H: Hasher>(&self, hasher: &mut H) {
        for value in self.0 {
            hasher.write(value.as_bytes());
        }
    }

    #[inline]
    fn matches(&self, stored: &LabelText) -> bool {
        let (bytes, ends) = stored.raw();
        if ends.len() != self.0.len() {
            return false;
        }
        let mut start = 0;
        for (&end, value) in ends.iter().zip(self.0) {
            let end = end as usize;
            match bytes.get(start..end) {
                Some(stored) if bytes_eq(stored, value.as_bytes()) => start = end,
                _ => return false,
            }
        }
        true
    }

    fn visit(&self, f: &mut dyn FnMut(&str)) {
        for value in self.0 {
            f(value);
        }
    }
}

/// Byte equality that compares short values inline, in at most two overlapping loads per side,
/// instead of calling `memcmp`: label values are mostly a few bytes long, and the call costs
/// more than the comparison.
#[inline]
pub(super) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
        bytes.try_into().unwrap_or([0; N])
    }
    let len = a.len();
    if len != b.len() {
        return false;
    }
    match len {
        0 => true,
        // First, middle and last byte cover every byte of 1 to 3.
        1..=3 => a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1],
        4..=8 => {
            word::<4>(&a[..4]) == word::<4>(&b[..4])
                && word::<4>(&a[len - 4..]) == word::<4>(&b[len - 4..])
        }
        9..=16 => {
            word::<8>(&a[..8]) == word::<8>(&b[..8])
                && word::<8>(&a[len - 8..]) == word::<8>(&b[len - 8..])
        }
        _ => a == b,
    }
}

pub(super) struct Typed<'a, L>(pub(super) &'a L);

impl<L: LabelSet> Key for Typed<'_, L> {
    fn hash_into<H: Hasher>(&self, hasher: &mut H) {
        self.0
            .visit_values(&mut |value| hasher.write(value.as_bytes()));
    }

    fn matches(&self, stored: &LabelText) -> bool {
        let mut stored_values = stored.value_bytes();
        let mut equal = true;
        self.0.visit_values(&mut |value| {
            equal &= stored_values
                .next()
                .is_some_and(|s| bytes_eq(s, value.as_bytes()));
        });
        equal && stored_values.next().is_none()
    }

    fn visit(&self, f: &mut dyn FnMut(&str)) {
        self.0.visit_values(f);
    }
}

/// Where a series lives in its family, from one lookup: the series can be found again
/// without hashing its labels. Crate-internal: the HTTP recorder keeps one per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesIndex(pub(super) u32);

impl SeriesIndex {
    /// The index as a number, for compact caches; `None` for the overflow series.
    pub(crate) fn get(self) -> Option<u32> {
        (self.0 != OVERFLOW_INDEX).then_some(self.0)
    }

    /// The index of a number [`get`](Self::get) gave.
    pub(crate) fn from_raw(index: u32) -> Self {
        Self(index)
    }
}

pub(super) const OVERFLOW_INDEX: u32 = u32::MAX;
