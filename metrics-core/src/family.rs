//! Labeled families: one metric per label set, bounded by a series cap.

use std::any::Any;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

use crate::error::Error;
use crate::metric::Metric;
use crate::value::{MetricKind, Scratch};
use crate::visit::{LabelsRef, Pairs, Sink};

/// How many series a labeled family holds before new label sets go to its overflow series,
/// unless the family or its registry says otherwise. The same default as OpenTelemetry's SDKs.
pub const DEFAULT_SERIES_CAP: usize = 2000;

/// Label sets held on the stack during a lookup by name; larger ones allocate.
const STACK_LABELS: usize = 8;

/// A typed label set: a struct whose fields are a family's labels, so that lookups cannot
/// misspell a name or forget one.
///
/// ```
/// use metrics_core::{LabelSet, Registry};
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
/// # Ok::<(), metrics_core::Error>(())
/// ```
pub trait LabelSet {
    /// The label names, in the order [`visit_values`](Self::visit_values) gives the values.
    const NAMES: &'static [&'static str];

    /// Calls `visit` once per label, with the values in the order of [`NAMES`](Self::NAMES).
    fn visit_values(&self, visit: &mut dyn FnMut(&str));
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
/// [`label_values`](Self::label_values) (in the order of the names), keep the handle it returns
/// and record into that: recording takes no lock and allocates nothing. A lookup of an existing
/// series takes a shared read lock and allocates nothing either; only a new label set takes the
/// write lock and allocates its key.
///
/// # The series cap
///
/// A family holds at most its cap of series ([`DEFAULT_SERIES_CAP`] unless the family's or the
/// registry's builder sets another). Past it, new label sets all share one overflow series
/// whose labels are all [`OVERFLOW_LABEL_VALUE`](crate::OVERFLOW_LABEL_VALUE), and the registry
/// exposes how many lookups were redirected in
/// `vitals_series_overflow_total{metric="<name>"}`. Nothing is lost: every observation is
/// counted, in its own series or in the overflow one.
///
/// ```
/// use metrics_core::Registry;
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
/// # Ok::<(), metrics_core::Error>(())
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
    pub fn labels(&self, labels: &[(&str, &str)]) -> Result<M, Error> {
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
    pub fn label_values(&self, values: &[&str]) -> Result<M, Error> {
        self.check_len(values.len())?;
        Ok(self.core.lookup(&Ordered(values)))
    }

    /// Removes the series for these labels. Handles already taken keep working but are no
    /// longer exposed; a later lookup starts a new series from zero. Returns whether the
    /// series existed.
    ///
    /// # Errors
    ///
    /// [`Error::LabelMismatch`] when a label is missing, unknown or given twice.
    pub fn remove(&self, labels: &[(&str, &str)]) -> Result<bool, Error> {
        let mut ordered = vec![""; self.core.desc.label_names.len()];
        self.order(labels, &mut ordered)?;
        Ok(self.core.remove(&Ordered(&ordered)))
    }

    /// Removes every series, the overflow series included.
    pub fn clear(&self) {
        let mut state = self.core.write();
        state.table.clear();
        state.entries.clear();
        state.overflow = None;
    }

    /// The number of series, not counting the overflow series.
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.read().entries.len()
    }

    /// Whether the family holds no series.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many series the family holds before new label sets go to the overflow series.
    #[must_use]
    pub fn series_cap(&self) -> usize {
        self.core.cap
    }

    /// How many lookups of new label sets were redirected to the overflow series.
    #[must_use]
    pub fn overflowed(&self) -> u64 {
        self.core.overflowed.load(Ordering::Relaxed)
    }

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

    fn order<'a>(&self, labels: &[(&str, &'a str)], out: &mut [&'a str]) -> Result<(), Error> {
        let names = &self.core.desc.label_names;
        for (slot, name) in out.iter_mut().zip(names.iter()) {
            let mut found = labels.iter().filter(|(n, _)| *n == &**name);
            match (found.next(), found.next()) {
                (Some(&(_, value)), None) => *slot = value,
                (None, _) => {
                    return Err(self.mismatch(format!(
                        "label `{name}` is missing; the labels are {}",
                        list(names)
                    )))
                }
                (Some(_), Some(_)) => {
                    return Err(self.mismatch(format!("label `{name}` is given more than once")))
                }
            }
        }
        if let Some((unknown, _)) = labels
            .iter()
            .find(|(n, _)| !names.iter().any(|name| &**name == *n))
        {
            return Err(self.mismatch(format!(
                "unknown label `{unknown}`; the labels are {}",
                list(names)
            )));
        }
        Ok(())
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
    pub fn get(&self, labels: &L) -> M {
        self.family.core.lookup(&Typed(labels))
    }

    /// Removes the series for this label set; returns whether it existed.
    pub fn remove(&self, labels: &L) -> bool {
        self.family.core.remove(&Typed(labels))
    }

    /// The untyped family underneath, for lookups by name and for clearing.
    #[must_use]
    pub fn family(&self) -> &Family<M> {
        &self.family
    }
}

/// A label set in a form the table can hash and compare without allocating.
trait Key {
    fn hash_into<H: Hasher>(&self, hasher: &mut H);
    fn matches(&self, stored: &[Box<str>]) -> bool;
    fn to_values(&self) -> Box<[Box<str>]>;
}

/// Values in the order of the family's label names.
struct Ordered<'a>(&'a [&'a str]);

impl Key for Ordered<'_> {
    fn hash_into<H: Hasher>(&self, hasher: &mut H) {
        for value in self.0 {
            value.hash(hasher);
        }
    }

    fn matches(&self, stored: &[Box<str>]) -> bool {
        stored.len() == self.0.len() && stored.iter().zip(self.0).all(|(s, v)| **s == **v)
    }

    fn to_values(&self) -> Box<[Box<str>]> {
        self.0.iter().map(|v| Box::from(*v)).collect()
    }
}

struct Typed<'a, L>(&'a L);

impl<L: LabelSet> Key for Typed<'_, L> {
    fn hash_into<H: Hasher>(&self, hasher: &mut H) {
        self.0.visit_values(&mut |value| value.hash(hasher));
    }

    fn matches(&self, stored: &[Box<str>]) -> bool {
        let mut index = 0;
        let mut equal = true;
        self.0.visit_values(&mut |value| {
            equal &= stored.get(index).is_some_and(|s| **s == *value);
            index += 1;
        });
        equal && index == stored.len()
    }

    fn to_values(&self) -> Box<[Box<str>]> {
        let mut values = Vec::with_capacity(L::NAMES.len());
        self.0
            .visit_values(&mut |value| values.push(Box::from(value)));
        values.into()
    }
}

pub(crate) struct FamilyCore<M: Metric> {
    pub(crate) desc: Descriptor,
    pub(crate) config: M::Config,
    cap: usize,
    hasher: foldhash::fast::RandomState,
    state: RwLock<State<M>>,
    overflowed: AtomicU64,
}

struct State<M> {
    /// Indexes into `entries`, hashed by label values.
    table: HashTable<usize>,
    /// Series in insertion order, which is the order they are exposed in.
    entries: Vec<Entry<M>>,
    overflow: Option<M>,
}

struct Entry<M> {
    hash: u64,
    values: Box<[Box<str>]>,
    metric: M,
}

impl<M: Metric> FamilyCore<M> {
    pub(crate) fn new(desc: Descriptor, config: M::Config, cap: usize) -> Self {
        Self {
            desc,
            config,
            cap,
            hasher: foldhash::fast::RandomState::default(),
            state: RwLock::new(State {
                table: HashTable::new(),
                entries: Vec::new(),
                overflow: None,
            }),
            overflowed: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State<M>> {
        // No code panics while holding the lock; recover the data if a caller's did anyway.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<M>> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn hash<K: Key>(&self, key: &K) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        key.hash_into(&mut hasher);
        hasher.finish()
    }

    /// The series of the unlabeled family.
    pub(crate) fn only_series(&self) -> M {
        self.lookup(&Ordered(&[]))
    }

    fn lookup<K: Key>(&self, key: &K) -> M {
        let hash = self.hash(key);
        {
            let state = self.read();
            let entries = &state.entries;
            if let Some(&i) = state.table.find(hash, |&i| key.matches(&entries[i].values)) {
                return entries[i].metric.clone();
            }
            if entries.len() >= self.cap {
                if let Some(overflow) = &state.overflow {
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    return overflow.clone();
                }
            }
        }
        let mut guard = self.write();
        let state = &mut *guard;
        let entries = &state.entries;
        if let Some(&i) = state.table.find(hash, |&i| key.matches(&entries[i].values)) {
            return entries[i].metric.clone();
        }
        if entries.len() >= self.cap {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            return state
                .overflow
                .get_or_insert_with(|| M::create(&self.config))
                .clone();
        }
        let metric = M::create(&self.config);
        let index = state.entries.len();
        state.entries.push(Entry {
            hash,
            values: key.to_values(),
            metric: metric.clone(),
        });
        let entries = &state.entries;
        state.table.insert_unique(hash, index, |&i| entries[i].hash);
        metric
    }

    fn remove<K: Key>(&self, key: &K) -> bool {
        let hash = self.hash(key);
        let mut guard = self.write();
        let state = &mut *guard;
        let entries = &state.entries;
        let Ok(found) = state
            .table
            .find_entry(hash, |&i| key.matches(&entries[i].values))
        else {
            return false;
        };
        let (index, _) = found.remove();
        let last = state.entries.len() - 1;
        state.entries.swap_remove(index);
        if index != last {
            let moved = state.entries[index].hash;
            if let Some(slot) = state.table.find_mut(moved, |&i| i == last) {
                *slot = index;
            }
        }
        true
    }
}

/// A family with its metric type erased, as the registry stores it.
pub(crate) trait ErasedFamily: Send + Sync + 'static {
    fn desc(&self) -> &Descriptor;
    fn config(&self) -> &dyn Any;
    fn overflowed(&self) -> u64;
    fn visit(&self, sink: &mut dyn Sink, scratch: &mut Scratch);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<M: Metric> ErasedFamily for FamilyCore<M> {
    fn desc(&self) -> &Descriptor {
        &self.desc
    }

    fn config(&self) -> &dyn Any {
        &self.config
    }

    fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn visit(&self, sink: &mut dyn Sink, scratch: &mut Scratch) {
        let state = self.read();
        let names = &self.desc.label_names;
        let consts = &self.desc.const_labels;
        for entry in &state.entries {
            let labels = LabelsRef {
                pairs: Pairs::Split {
                    names,
                    values: &entry.values,
                },
                consts,
            };
            sink.series(&labels, entry.metric.read(&self.config, scratch));
        }
        if let Some(overflow) = &state.overflow {
            let labels = LabelsRef {
                pairs: Pairs::Overflow { names },
                consts,
            };
            sink.series(&labels, overflow.read(&self.config, scratch));
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
