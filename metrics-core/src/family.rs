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
use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::error::Error;
use crate::kind::MetricKind;
use crate::metric::Metric;
use crate::metric::Scratch;
use crate::util::arena::Arena;
use crate::visit::{LabelText, LabelsRef, Pairs, Sink, OVERFLOW_LABEL_VALUE};

/// How many series a labeled family holds before new label sets go to its overflow series,
/// unless the family or its registry says otherwise. The same default as OpenTelemetry's SDKs.
pub const DEFAULT_SERIES_CAP: usize = 2000;

/// Label sets held on the stack during a lookup by name; larger ones allocate.
const STACK_LABELS: usize = 4;
/// The most buckets a family's index has; chains grow longer past it.
const MAX_BUCKETS: usize = 1 << 16;
/// The most series (live or removed) a family can ever hold: indexes are `u32`.
const MAX_NODES: usize = u32::MAX as usize - 1;

/// A typed label set: a struct whose fields are a family's labels, so that lookups cannot
/// misspell a name or forget one.
///
/// ```
/// use vitals_core::{LabelSet, Registry};
///
/// struct Query<'a> {
///     table: &'a str,
///     op: &'a str,
/// }
///
/// impl LabelSet for Query<'_> {
///     const NAMES: &'static [&'static str] = &["table", "op"];
///
///     fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
///         visit(self.table);
///         visit(self.op);
///     }
/// }
///
/// let registry = Registry::new();
/// let queries = registry
///     .counter("db_queries", "Queries run.")
///     .typed_labels::<Query<'static>>()
///     .register()?;
/// queries.get(&Query { table: "users", op: "select" }).inc();
/// let value = registry.get_sample_value("db_queries_total", &[("op", "select"), ("table", "users")]);
/// assert_eq!(value, Some(1.0));
/// # Ok::<(), vitals_core::Error>(())
/// ```
pub trait LabelSet {
    /// The label names, in the order [`visit_values`](Self::visit_values) gives the values.
    const NAMES: &'static [&'static str];

    /// Calls `visit` once per label, with the values in the order of [`NAMES`](Self::NAMES).
    fn visit_values(&self, visit: &mut dyn FnMut(&str));
}

/// A [`LabelSet`] with a fixed, small number of possible values (enums of methods, statuses,
/// outcomes), numbered densely from 0. A [`DenseFamily`] keyed by it finds a series by that
/// number in a flat array: no hashing and no string comparison.
///
/// ```
/// use vitals_core::{DenseLabelSet, LabelSet, Registry};
///
/// #[derive(Clone, Copy)]
/// enum Outcome { Ok, Retry, Failed }
///
/// impl LabelSet for Outcome {
///     const NAMES: &'static [&'static str] = &["outcome"];
///
///     fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
///         visit(match self {
///             Outcome::Ok => "ok",
///             Outcome::Retry => "retry",
///             Outcome::Failed => "failed",
///         });
///     }
/// }
///
/// impl DenseLabelSet for Outcome {
///     const CARDINALITY: usize = 3;
///
///     fn dense_index(&self) -> usize {
///         *self as usize
///     }
/// }
///
/// let registry = Registry::new();
/// let jobs = registry.counter("jobs", "Jobs run.").typed_labels::<Outcome>().register_dense()?;
/// jobs.get(&Outcome::Retry).inc();
/// assert_eq!(registry.get_sample_value("jobs_total", &[("outcome", "retry")]), Some(1.0));
/// # Ok::<(), vitals_core::Error>(())
/// ```
pub trait DenseLabelSet: LabelSet {
    /// How many distinct label sets there are.
    const CARDINALITY: usize;

    /// This label set's number, below [`CARDINALITY`](Self::CARDINALITY). A number out of
    /// range is not an error: the lookup falls back to hashing the values.
    fn dense_index(&self) -> usize;
}

/// What a registered family is: its name, help, type and labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Descriptor {
    /// The family name, without the `_total` or `_info` suffix of counters and infos.
    pub(crate) name: Box<str>,
    pub(crate) help: Box<str>,
    pub(crate) unit: Option<Box<str>>,
    pub(crate) kind: MetricKind,
    pub(crate) label_names: Box<[Box<str>]>,
    pub(crate) const_labels: Box<[(Box<str>, Box<str>)]>,
}

/// A metric with labels: one series of `M` per label set.
///
/// Look a series up with [`labels`](Self::labels) (by name, in any order) or
/// [`label_values`](Self::label_values) (in the order of the names). A lookup of an existing
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
///     .labels(["method", "status"])
///     .series_cap(2)
///     .register()?;
/// requests.labels(&[("status", "200"), ("method", "GET")])?.inc();
/// requests.label_values(&["POST", "201"])?.inc();
/// requests.label_values(&["PUT", "200"])?.inc(); // over the cap: counted in the overflow series
/// assert_eq!(requests.len(), 2);
/// assert_eq!(
///     registry.get_sample_value(
///         "http_requests_total",
///         &[("method", "__overflow__"), ("status", "__overflow__")]
///     ),
///     Some(1.0)
/// );
/// assert!(requests.labels(&[("method", "GET")]).is_err(), "a label is missing");
///
/// // Keep a handle where the label set is known in advance.
/// let get_ok = requests.label_values(&["GET", "200"])?.clone();
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
    pub fn labels(&self, labels: &[(&str, &str)]) -> Result<&M, Error> {
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
    pub fn label_values(&self, values: &[&str]) -> Result<&M, Error> {
        self.check_len(values.len())?;
        Ok(self.core.lookup(&Ordered(values)))
    }

    /// As [`label_values`](Self::label_values), but gives where the series lives, so that it
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

/// A family whose label sets are a [`LabelSet`] type: lookups cannot fail.
pub struct TypedFamily<M: Metric, L> {
    family: Family<M>,
    labels: PhantomData<fn(&L)>,
}

impl<M: Metric, L> Clone for TypedFamily<M, L> {
    fn clone(&self) -> Self {
        Self {
            family: self.family.clone(),
            labels: PhantomData,
        }
    }
}

impl<M: Metric, L> fmt::Debug for TypedFamily<M, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedFamily").field(&self.family).finish()
    }
}

impl<M: Metric, L: LabelSet> TypedFamily<M, L> {
    pub(crate) fn new(family: Family<M>) -> Self {
        Self {
            family,
            labels: PhantomData,
        }
    }

    /// The series for this label set; created on first use.
    pub fn get(&self, labels: &L) -> &M {
        self.family.core.lookup(&Typed(labels))
    }

    /// Removes the series for this label set, as [`Family::remove`] does.
    pub fn remove(&self, labels: &L) -> bool {
        self.family.core.remove(&Typed(labels))
    }

    /// The untyped family underneath, for lookups by name and for clearing.
    #[must_use]
    pub fn family(&self) -> &Family<M> {
        &self.family
    }
}

/// A family keyed by a [`DenseLabelSet`]: a lookup is an index into a flat array.
pub struct DenseFamily<M: Metric, L> {
    typed: TypedFamily<M, L>,
    /// For each dense index, its series once looked up.
    slots: Arc<[DenseSlot<M>]>,
}

/// A cached series: valid while the family's removal generation is the one it was cached in.
struct DenseSlot<M> {
    metric: OnceLock<M>,
    generation: AtomicU64,
}

impl<M: Metric, L> Clone for DenseFamily<M, L> {
    fn clone(&self) -> Self {
        Self {
            typed: self.typed.clone(),
            slots: Arc::clone(&self.slots),
        }
    }
}

impl<M: Metric, L> fmt::Debug for DenseFamily<M, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DenseFamily")
            .field(&self.typed.family)
            .finish()
    }
}

impl<M: Metric, L: DenseLabelSet> DenseFamily<M, L> {
    pub(crate) fn new(typed: TypedFamily<M, L>) -> Self {
        Self {
            typed,
            slots: (0..L::CARDINALITY)
                .map(|_| DenseSlot {
                    metric: OnceLock::new(),
                    generation: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// The series for this label set; created on first use.
    #[inline]
    pub fn get(&self, labels: &L) -> &M {
        let core = &*self.typed.family.core;
        let Some(slot) = self.slots.get(labels.dense_index()) else {
            return core.lookup(&Typed(labels));
        };
        // A removal anywhere in the family invalidates every slot, so that a removed series
        // is looked up (and brought back) again rather than recorded into out of sight.
        let generation = core.removals.load(Ordering::Acquire);
        if slot.generation.load(Ordering::Acquire) == generation {
            if let Some(metric) = slot.metric.get() {
                return metric;
            }
        }
        match core.lookup_node(&Typed(labels)) {
            // The series' handle never changes, even when it is removed and brought back, so
            // the slot keeps the same one and only its generation moves.
            Some(node) => {
                let metric = slot.metric.get_or_init(|| node.metric.clone());
                slot.generation.store(generation, Ordering::Release);
                metric
            }
            None => core.overflow(),
        }
    }

    /// Removes the series for this label set, as [`Family::remove`] does.
    pub fn remove(&self, labels: &L) -> bool {
        self.typed.remove(labels)
    }

    /// The untyped family underneath, for lookups by name and for clearing.
    #[must_use]
    pub fn family(&self) -> &Family<M> {
        self.typed.family()
    }
}

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
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
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

struct Typed<'a, L>(&'a L);

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
pub(crate) struct SeriesIndex(u32);

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

const OVERFLOW_INDEX: u32 = u32::MAX;

/// One series of a family: its label values, their rendering, and its metric.
struct Node<M> {
    hash: u64,
    /// Its own index in the arena, for [`SeriesIndex`].
    index: u32,
    /// The label values, and their rendering for the text formats.
    labels: LabelText,
    metric: M,
    /// The next series in this bucket's chain, as arena index plus one (0 ends the chain).
    next: u32,
    live: AtomicBool,
}

fn index_link(index: usize) -> u32 {
    // Indexes stay below `MAX_NODES`, so the link always fits.
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

pub(crate) struct FamilyCore<M: Metric> {
    pub(crate) desc: Descriptor,
    pub(crate) config: M::Config,
    cap: usize,
    max_nodes: usize,
    hasher: foldhash::fast::RandomState,
    nodes: Arena<Node<M>>,
    /// Chain heads, as arena index plus one; allocated with the first series.
    buckets: OnceLock<Box<[AtomicU32]>>,
    /// Serialises the writers (insertion, revival, removal); holds their scratch buffer.
    writer: Mutex<String>,
    live: AtomicUsize,
    /// Counts removals and clears, so that [`DenseFamily`] slots know when to look again.
    removals: AtomicU64,
    overflow: OnceLock<M>,
    overflow_live: AtomicBool,
    overflowed: AtomicU64,
    /// The overflow series' labels, rendered.
    overflow_rendered: Box<str>,
}

impl<M: Metric> FamilyCore<M> {
    pub(crate) fn new(desc: Descriptor, config: M::Config, cap: usize) -> Self {
        let overflow_rendered = LabelText::build(
            &desc.label_names,
            &desc.const_labels,
            &|f| {
                desc.label_names
                    .iter()
                    .for_each(|_| f(OVERFLOW_LABEL_VALUE))
            },
            &mut String::new(),
        )
        .map_or_else(String::new, |text| text.rendered().to_owned());
        Self {
            desc,
            config,
            cap,
            max_nodes: cap.saturating_mul(2).saturating_add(1024).min(MAX_NODES),
            hasher: foldhash::fast::RandomState::default(),
            nodes: Arena::default(),
            buckets: OnceLock::new(),
            writer: Mutex::new(String::new()),
            live: AtomicUsize::new(0),
            removals: AtomicU64::new(0),
            overflow: OnceLock::new(),
            overflow_live: AtomicBool::new(false),
            overflowed: AtomicU64::new(0),
            overflow_rendered: overflow_rendered.into(),
        }
    }

    #[inline]
    fn hash<K: Key>(&self, key: &K) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        key.hash_into(&mut hasher);
        hasher.finish()
    }

    /// The series of the unlabeled family.
    pub(crate) fn only_series(&self) -> M {
        self.lookup(&Ordered(&[])).clone()
    }

    /// Follows the chain of `hash`'s bucket to the series of `key`, live or not.
    #[inline]
    fn find<K: Key>(&self, hash: u64, key: &K) -> Option<&Node<M>> {
        let buckets = self.buckets.get()?;
        #[allow(clippy::cast_possible_truncation)] // only the low bits pick the bucket
        let mut link = buckets[hash as usize & (buckets.len() - 1)].load(Ordering::Acquire);
        while link != 0 {
            let index = link as usize - 1;
            let node = self.nodes.get(index)?;
            if node.hash == hash && key.matches(&node.labels) {
                return Some(node);
            }
            link = node.next;
        }
        None
    }

    #[inline]
    fn lookup<K: Key>(&self, key: &K) -> &M {
        match self.lookup_node(key) {
            Some(node) => &node.metric,
            None => self.overflow(),
        }
    }

    /// The live series of `key`, made or brought back if need be; `None` when the label set
    /// goes to the overflow series.
    #[inline]
    fn lookup_node<K: Key>(&self, key: &K) -> Option<&Node<M>> {
        let hash = self.hash(key);
        match self.find(hash, key) {
            Some(node) if node.live.load(Ordering::Acquire) => Some(node),
            // A new label set while the family is full: no need for the writer lock.
            None if self.live.load(Ordering::Acquire) >= self.cap => None,
            _ => self.resolve(hash, key),
        }
    }

    /// The slow path, under the writer lock: bring a removed series back, or add a new one,
    /// or say (with `None`) that the label set goes to the overflow series.
    #[cold]
    #[inline(never)]
    fn resolve<K: Key>(&self, hash: u64, key: &K) -> Option<&Node<M>> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let scratch = &mut *writer;
        let live = self.live.load(Ordering::Relaxed);
        if let Some(node) = self.find(hash, key) {
            if node.live.load(Ordering::Relaxed) {
                return Some(node);
            }
            if live >= self.cap {
                return None;
            }
            node.metric.reset(&self.config);
            node.live.store(true, Ordering::Release);
            self.live.store(live + 1, Ordering::Release);
            return Some(node);
        }
        if live >= self.cap || self.nodes.len() >= self.max_nodes {
            return None;
        }
        let buckets = self.buckets.get_or_init(|| {
            let count = self.cap.clamp(16, MAX_BUCKETS).next_power_of_two();
            (0..count).map(|_| AtomicU32::new(0)).collect()
        });
        #[allow(clippy::cast_possible_truncation)]
        let bucket = &buckets[hash as usize & (buckets.len() - 1)];
        let labels = LabelText::build(
            &self.desc.label_names,
            &self.desc.const_labels,
            &|f| key.visit(f),
            scratch,
        )?;
        // One writer at a time: the next push takes the current length as its index.
        let index = u32::try_from(self.nodes.len()).ok()?;
        let node = Node {
            hash,
            index,
            labels,
            metric: M::create(&self.config),
            next: bucket.load(Ordering::Relaxed),
            live: AtomicBool::new(true),
        };
        let index = self.nodes.push(node).ok()?;
        // Publish: the node is complete in the arena before its bucket points at it.
        bucket.store(index_link(index), Ordering::Release);
        self.live.store(live + 1, Ordering::Release);
        self.nodes.get(index)
    }

    /// As [`lookup`](Self::lookup), but gives the series' index, to come back to it
    /// without another lookup.
    #[inline]
    fn lookup_index<K: Key>(&self, key: &K) -> SeriesIndex {
        match self.lookup_node(key) {
            Some(node) => SeriesIndex(node.index),
            None => {
                self.overflow();
                SeriesIndex(OVERFLOW_INDEX)
            }
        }
    }

    /// The series at `index` if it is still live (not removed since the lookup).
    #[inline]
    fn live_series(&self, index: SeriesIndex) -> Option<&M> {
        let node = self.nodes.get(index.0 as usize)?;
        node.live.load(Ordering::Acquire).then_some(&node.metric)
    }

    /// The series at `index`, as a lookup gave it.
    #[inline]
    fn series(&self, index: SeriesIndex) -> &M {
        match self.nodes.get(index.0 as usize) {
            Some(node) if index.0 != OVERFLOW_INDEX => &node.metric,
            // The overflow series (counted when the lookup was redirected).
            _ => self.overflow.get_or_init(|| M::create(&self.config)),
        }
    }

    /// The label value at `position` of the series at `index`; `None` for the overflow
    /// series.
    fn label_value(&self, index: SeriesIndex, position: usize) -> Option<&str> {
        if index.0 == OVERFLOW_INDEX {
            return None;
        }
        self.nodes
            .get(index.0 as usize)?
            .labels
            .values()
            .nth(position)
    }

    #[cold]
    #[inline(never)]
    fn overflow(&self) -> &M {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        let metric = self.overflow.get_or_init(|| M::create(&self.config));
        if !self.overflow_live.load(Ordering::Acquire) {
            self.overflow_live.store(true, Ordering::Release);
        }
        metric
    }

    fn remove<K: Key>(&self, key: &K) -> bool {
        let hash = self.hash(key);
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        match self.find(hash, key) {
            Some(node) if node.live.swap(false, Ordering::AcqRel) => {
                self.live.fetch_sub(1, Ordering::AcqRel);
                self.removals.fetch_add(1, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }

    fn clear(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for node in self.nodes.iter() {
            node.live.store(false, Ordering::Release);
        }
        self.live.store(0, Ordering::Release);
        self.removals.fetch_add(1, Ordering::AcqRel);
        if self.overflow_live.swap(false, Ordering::AcqRel) {
            if let Some(overflow) = self.overflow.get() {
                overflow.reset(&self.config);
            }
        }
    }
}

/// A family with its metric type erased, as the registry stores it.
pub(crate) trait ErasedFamily: Send + Sync + 'static {
    fn desc(&self) -> &Descriptor;
    fn config(&self) -> &dyn std::any::Any;
    fn overflowed(&self) -> u64;
    fn visit(&self, sink: &mut dyn Sink, scratch: &mut Scratch);
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

impl<M: Metric> ErasedFamily for FamilyCore<M> {
    fn desc(&self) -> &Descriptor {
        &self.desc
    }

    fn config(&self) -> &dyn std::any::Any {
        &self.config
    }

    fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn visit(&self, sink: &mut dyn Sink, scratch: &mut Scratch) {
        let names = &self.desc.label_names;
        let consts = &self.desc.const_labels;
        for node in self.nodes.iter() {
            if !node.live.load(Ordering::Acquire) {
                continue;
            }
            let labels = LabelsRef {
                pairs: Pairs::Split {
                    names,
                    values: &node.labels,
                },
                consts,
                rendered: Some(node.labels.rendered()),
            };
            sink.series(&labels, node.metric.read(&self.config, scratch));
        }
        if self.overflow_live.load(Ordering::Acquire) {
            if let Some(overflow) = self.overflow.get() {
                let labels = LabelsRef {
                    pairs: Pairs::Overflow { names },
                    consts,
                    rendered: Some(&self.overflow_rendered),
                };
                sink.series(&labels, overflow.read(&self.config, scratch));
            }
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Counter, Registry};

    #[derive(Clone, Copy, Debug)]
    enum Method {
        Get,
        Post,
    }

    impl LabelSet for Method {
        const NAMES: &'static [&'static str] = &["method"];

        fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
            visit(match self {
                Method::Get => "GET",
                Method::Post => "POST",
            });
        }
    }

    impl DenseLabelSet for Method {
        const CARDINALITY: usize = 2;

        fn dense_index(&self) -> usize {
            *self as usize
        }
    }

    /// A label set whose dense index lies: lookups must still be right and must not panic.
    struct Liar(&'static str);

    impl LabelSet for Liar {
        const NAMES: &'static [&'static str] = &["method"];

        fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
            visit(self.0);
        }
    }

    impl DenseLabelSet for Liar {
        const CARDINALITY: usize = 1;

        fn dense_index(&self) -> usize {
            usize::MAX
        }
    }

    #[test]
    fn a_series_index_finds_the_same_series_and_its_labels_again() {
        let r = Registry::new();
        let family = r
            .gauge("in_flight", "h")
            .labels(["method", "route"])
            .series_cap(1)
            .register()
            .unwrap();
        let users = family.index_of(&["GET", "/users/{id}"]).unwrap();
        family.series(users).inc();
        assert_eq!(
            family.label_values(&["GET", "/users/{id}"]).unwrap().get(),
            1
        );
        assert_eq!(family.label_value(users, 0), Some("GET"));
        assert_eq!(family.label_value(users, 1), Some("/users/{id}"));
        assert_eq!(family.label_value(users, 2), None);
        // Past the cap: the overflow series, which has no label values of its own.
        let other = family.index_of(&["GET", "/other"]).unwrap();
        assert_ne!(other, users);
        assert_eq!(family.label_value(other, 1), None);
        family.series(other).add(3);
        assert_eq!(
            r.get_sample_value(
                "in_flight",
                &[("method", "__overflow__"), ("route", "__overflow__")]
            ),
            Some(3.0)
        );
        assert_eq!(family.overflowed(), 1);
    }

    #[test]
    fn dense_typed_and_named_lookups_reach_the_same_series() {
        let r = Registry::new();
        let dense = r
            .counter("requests", "h")
            .typed_labels::<Method>()
            .register_dense()
            .unwrap();
        let typed = r
            .counter("requests", "h")
            .typed_labels::<Method>()
            .register()
            .unwrap();
        dense.get(&Method::Get).inc();
        dense.get(&Method::Get).inc();
        typed.get(&Method::Get).inc();
        dense.family().labels(&[("method", "GET")]).unwrap().inc();
        assert_eq!(dense.get(&Method::Get).get(), 4);
        assert_eq!(dense.get(&Method::Post).get(), 0);
        assert_eq!(typed.get(&Method::Get).get(), 4, "one series behind both");
        let liar = r
            .counter("requests", "h")
            .typed_labels::<Liar>()
            .register_dense()
            .unwrap();
        assert_eq!(
            liar.get(&Liar("GET")).get(),
            4,
            "an index out of range falls back to hashing"
        );
    }

    #[test]
    fn a_removed_series_comes_back_from_zero_through_every_path() {
        let r = Registry::new();
        let dense = r
            .counter("requests", "h")
            .typed_labels::<Method>()
            .register_dense()
            .unwrap();
        let kept: Counter = dense.get(&Method::Post).clone();
        kept.inc_by(5);
        assert!(dense.remove(&Method::Post));
        assert!(!dense.remove(&Method::Post));
        assert_eq!(
            r.get_sample_value("requests_total", &[("method", "POST")]),
            None
        );
        assert_eq!(dense.get(&Method::Post).get(), 0, "back from zero");
        kept.inc();
        assert_eq!(
            r.get_sample_value("requests_total", &[("method", "POST")]),
            Some(1.0),
            "an old handle records into the revived series"
        );
        dense.family().clear();
        assert!(dense.family().is_empty());
        assert_eq!(dense.get(&Method::Post).get(), 0);
        assert_eq!(dense.family().len(), 1);
    }

    #[test]
    fn many_labels_and_empty_values_are_stored_and_found_exactly() {
        let r = Registry::new()
            .with_const_labels(&[("env", "prod")])
            .unwrap();
        let names = ["a", "b", "c", "d", "e", "f"];
        let family = r.gauge("wide", "h").labels(names).register().unwrap();
        let values = ["", "x", "", "long value with \"quotes\"", "é", ""];
        family.label_values(&values).unwrap().set(6);
        family
            .label_values(&["", "x", "", "long value with \"quotes\"", "é", "other"])
            .unwrap()
            .set(7);
        let pairs: Vec<(&str, &str)> = names.iter().copied().zip(values).rev().collect();
        assert_eq!(
            family.labels(&pairs).unwrap().get(),
            6,
            "found by name, in any order"
        );
        let mut with_const = pairs.clone();
        with_const.push(("env", "prod"));
        assert_eq!(r.get_sample_value("wide", &with_const), Some(6.0));
        assert_eq!(family.len(), 2);
        let text = crate::encoding::text::encode(&r);
        assert!(
            text.contains(
                "wide{a=\"\",b=\"x\",c=\"\",d=\"long value with \\\"quotes\\\"\",e=\"é\",f=\"\",env=\"prod\"} 6"
            ),
            "{text}"
        );
    }

    #[test]
    fn churn_of_distinct_label_sets_is_bounded_and_loses_nothing() {
        let r = Registry::new();
        let family = r
            .counter("jobs", "h")
            .labels(["job"])
            .series_cap(2)
            .register()
            .unwrap();
        let lifetime = 2 * 2 + 1024;
        for i in 0..lifetime + 100 {
            let job = format!("job-{i}");
            family.labels(&[("job", &job)]).unwrap().inc();
            family.remove(&[("job", &job)]).unwrap();
        }
        // Past the lifetime limit, new label sets are counted in the overflow series.
        assert_eq!(family.overflowed(), 100);
        assert_eq!(
            r.get_sample_value("jobs_total", &[("job", "__overflow__")]),
            Some(100.0)
        );
        // Label sets seen before still come back.
        family.labels(&[("job", "job-7")]).unwrap().inc();
        assert_eq!(
            r.get_sample_value("jobs_total", &[("job", "job-7")]),
            Some(1.0)
        );
    }

    #[test]
    fn lookups_racing_removals_and_revivals_stay_consistent() {
        let r = Registry::new();
        let family = r
            .gauge("g", "h")
            .labels(["k"])
            .series_cap(64)
            .register()
            .unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for t in 0..2 {
                let (family, stop) = (&family, &stop);
                scope.spawn(move || {
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        family.label_values(&[&(i % 50).to_string()]).unwrap().inc();
                        i += 1;
                    }
                });
            }
            for i in 0..20_000 {
                family.remove(&[("k", &(i % 50).to_string())]).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        // Every key is a live series or not; the live count matches the exposition.
        let exposed = (0..50)
            .filter(|k| r.get_sample_value("g", &[("k", &k.to_string())]).is_some())
            .count();
        assert_eq!(exposed, family.len());
        assert!(family.len() <= 50);
        assert_eq!(family.overflowed(), 0);
    }
}
