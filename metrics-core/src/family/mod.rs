//! Labeled families: one metric per label set, bounded by a series cap.
//!
//! # How a lookup stays cheap
//!
//! Series live in an append-only [`Arena`]: their addresses never change, so a lookup can
//! return `&M` borrowed from the family instead of cloning a handle. The arena is indexed by
//! a fixed array of buckets holding chains of series, linked by index. A lookup hashes the
//! label values, follows one chain with acquire loads and compares; it takes no lock and
//! writes no shared memory, so threads looking up the same series do not slow each other
//! down. Only a new label set takes the family's writer lock.
//!
//! Series are never freed while their family lives, which is what makes the borrow sound.
//! Removing a series marks it dead: it leaves the exposition, and a later lookup of the same
//! label set brings it back from zero. The memory of removed label sets is kept, so a family
//! also bounds how many distinct label sets it holds over its lifetime (see [`Family`]).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::Error;
use crate::metric::Metric;

mod erased;
mod index;
mod key;
mod labels;
mod sink;
mod typed;
mod value;

pub(crate) use erased::{Descriptor, ErasedFamily};
pub(crate) use index::FamilyCore;
use key::{bytes_eq, Key, Typed};
pub(crate) use key::{Ordered, SeriesIndex};
pub(crate) use labels::LabelText;
pub(crate) use sink::{FamilyRef, LabelsRef, Pairs, Sink};
pub use typed::{DenseFamily, DenseLabelSet, LabelSet, TypedFamily};
pub use value::LabelValue;

/// How many series a labeled family holds before new label sets go to its overflow series,
/// unless the family or its registry says otherwise. The same default as OpenTelemetry's SDKs.
pub const DEFAULT_SERIES_CAP: usize = 2000;

/// The label value every label of a family's overflow series takes.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// Label sets held on the stack during a lookup by name; larger ones allocate.
const STACK_LABELS: usize = 4;

/// A metric with labels: one series of `M` per label set.
///
/// Look a series up with [`with_labels`](Self::with_labels) (by name, in any order) or
/// [`with_label_values`](Self::with_label_values) (in the order of the names). A lookup of an existing
/// series takes no lock, writes no shared memory and allocates nothing; it returns the series
/// borrowed from the family. Clone it to keep an owned handle: recording into a handle is one
/// atomic operation.
///
/// # The series cap
///
/// A family holds at most its cap of live series ([`DEFAULT_SERIES_CAP`] unless the family's
/// or the registry's builder sets another). Past it, new label sets all share one overflow
/// series whose labels are all [`OVERFLOW_LABEL_VALUE`], and the registry exposes how many
/// lookups were redirected in `vitals_series_overflow_total{metric="<name>"}`. Nothing is
/// lost: every observation is counted, in its own series or in the overflow one.
///
/// Removed series keep their memory (see [`remove`](Self::remove)), so a family also holds at
/// most `2 × cap + 1024` distinct label sets over its lifetime, removed ones included; past
/// that, new label sets go to the overflow series too.
///
/// ```
/// use vitals_core::Registry;
///
/// let registry = Registry::new();
/// let requests = registry
///     .counter("http_requests", "HTTP requests served.")
///     .label_names(["method", "status"])
///     .series_cap(2)
///     .register()?;
/// requests.with_labels(&[("status", "200"), ("method", "GET")])?.inc();
/// requests.with_label_values(&["POST", "201"])?.inc();
/// requests.with_label_values(&["PUT", "200"])?.inc(); // over the cap: counted in the overflow series
/// assert_eq!(requests.len(), 2);
/// assert_eq!(
///     registry.get_sample_value(
///         "http_requests_total",
///         &[("method", "__overflow__"), ("status", "__overflow__")]
///     ),
///     Some(1.0)
/// );
/// assert!(requests.with_labels(&[("method", "GET")]).is_err(), "a label is missing");
///
/// // Keep a handle where the label set is known in advance.
/// let get_ok = requests.with_label_values(&["GET", "200"])?.clone();
/// get_ok.inc();
/// assert_eq!(get_ok.get(), 2);
/// # Ok::<(), vitals_core::Error>(())
/// ```
pub struct Family<M: Metric> {
    core: Arc<FamilyCore<M>>,
}

impl<M: Metric> Clone for Family<M> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<M: Metric> fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.core.desc.name)
            .field("labels", &self.core.desc.label_names)
            .field("series", &self.len())
            .field("series_cap", &self.core.cap)
            .finish_non_exhaustive()
    }
}

impl<M: Metric> Family<M> {
    pub(crate) fn from_core(core: Arc<FamilyCore<M>>) -> Self {
        Self { core }
    }

    /// The series for these `(name, value)` labels, given in any order; created on first use.
    ///
    /// # Errors
    ///
    /// [`Error::LabelMismatch`] when a label is missing, unknown or given twice.
    #[inline]
    pub fn with_labels(&self, labels: &[(&str, &str)]) -> Result<&M, Error> {
        let names = &self.core.desc.label_names;
        if names.len() <= STACK_LABELS {
            let mut ordered = [""; STACK_LABELS];
            self.order(labels, &mut ordered[..names.len()])?;
            Ok(self.core.lookup(&Ordered(&ordered[..names.len()])))
        } else {
            let mut ordered = vec![""; names.len()];
            self.order(labels, &mut ordered)?;
            Ok(self.core.lookup(&Ordered(&ordered)))
        }
    }

    /// The series for these label values, in the order the label names were registered.
    ///
    /// # Errors
    ///
    /// [`Error::LabelMismatch`] when the number of values differs from the number of names.
    #[inline]
    pub fn with_label_values(&self, values: &[&str]) -> Result<&M, Error> {
        self.check_len(values.len())?;
        Ok(self.core.lookup(&Ordered(values)))
    }

    /// As [`with_label_values`](Self::with_label_values), but gives where the series lives, so that it
    /// can be found again with [`series`](Self::series) without another lookup.
    #[inline]
    pub(crate) fn index_of(&self, values: &[&str]) -> Result<SeriesIndex, Error> {
        self.check_len(values.len())?;
        Ok(self.core.lookup_index(&Ordered(values)))
    }

    /// The series an [`index_of`](Self::index_of) gave.
    #[inline]
    pub(crate) fn series(&self, index: SeriesIndex) -> &M {
        self.core.series(index)
    }

    /// The series an [`index_of`](Self::index_of) gave, if it was not removed since; `None`
    /// for the overflow series too, which is found by a lookup only (so that it is counted).
    #[inline]
    pub(crate) fn live_series(&self, index: SeriesIndex) -> Option<&M> {
        self.core.live_series(index)
    }

    /// A label value of the series an [`index_of`](Self::index_of) gave, by position;
    /// `None` for the overflow series.
    pub(crate) fn label_value(&self, index: SeriesIndex, position: usize) -> Option<&str> {
        self.core.label_value(index, position)
    }

    /// Removes the series for these labels from the exposition; returns whether it was there.
    ///
    /// Handles taken before keep working. A later lookup of the same label set brings the
    /// series back from zero, and those handles record into it again.
    ///
    /// # Errors
    ///
    /// [`Error::LabelMismatch`] when a label is missing, unknown or given twice.
    pub fn remove(&self, labels: &[(&str, &str)]) -> Result<bool, Error> {
        let mut ordered = vec![""; self.core.desc.label_names.len()];
        self.order(labels, &mut ordered)?;
        Ok(self.core.remove(&Ordered(&ordered)))
    }

    /// Removes every series from the exposition, the overflow series included, as
    /// [`remove`](Self::remove) does for one.
    pub fn clear(&self) {
        self.core.clear();
    }

    /// The number of live series, not counting the overflow series.
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.live.load(Ordering::Acquire)
    }

    /// Whether the family holds no live series.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many series the family holds before new label sets go to the overflow series.
    #[must_use]
    pub fn series_cap(&self) -> usize {
        self.core.cap
    }

    /// How many lookups were redirected to the overflow series.
    #[must_use]
    pub fn overflowed(&self) -> u64 {
        self.core.overflowed.load(Ordering::Relaxed)
    }

    #[inline]
    fn check_len(&self, given: usize) -> Result<(), Error> {
        let names = &self.core.desc.label_names;
        if given == names.len() {
            return Ok(());
        }
        Err(self.mismatch(format!(
            "{given} label values given, but the labels are {}",
            list(names)
        )))
    }

    /// Puts the values of `labels` in the order of the family's names.
    ///
    /// With as many labels as names, finding every name is enough: `n` distinct names found
    /// among `n` labels leave no room for a repeated or unknown one.
    #[inline]
    fn order<'a>(&self, labels: &[(&str, &'a str)], out: &mut [&'a str]) -> Result<(), Error> {
        let names = &self.core.desc.label_names;
        if labels.len() == names.len() {
            let mut complete = true;
            for (i, (slot, name)) in out.iter_mut().zip(names.iter()).enumerate() {
                // Labels are usually given in the registered order: try that position first.
                let found = match labels.get(i) {
                    Some(&(n, value)) if bytes_eq(n.as_bytes(), name.as_bytes()) => Some(value),
                    _ => labels
                        .iter()
                        .find(|(n, _)| bytes_eq(n.as_bytes(), name.as_bytes()))
                        .map(|&(_, value)| value),
                };
                match found {
                    Some(value) => *slot = value,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                return Ok(());
            }
        }
        Err(self.mismatch(self.explain_mismatch(labels)))
    }

    /// Says what is wrong with labels that [`order`](Self::order) refused.
    fn explain_mismatch(&self, labels: &[(&str, &str)]) -> String {
        let names = &self.core.desc.label_names;
        if let Some((unknown, _)) = labels
            .iter()
            .find(|(n, _)| !names.iter().any(|name| &**name == *n))
        {
            return format!("unknown label `{unknown}`; the labels are {}", list(names));
        }
        for name in names.iter() {
            match labels.iter().filter(|(n, _)| *n == &**name).count() {
                0 => return format!("label `{name}` is missing; the labels are {}", list(names)),
                1 => {}
                _ => return format!("label `{name}` is given more than once"),
            }
        }
        format!("the labels are {}", list(names))
    }

    fn mismatch(&self, reason: String) -> Error {
        Error::LabelMismatch {
            metric: self.core.desc.name.to_string(),
            reason,
        }
    }
}

fn list(names: &[Box<str>]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests;
