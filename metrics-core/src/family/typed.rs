//! Families keyed by a typed label set, and by a dense one.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::metric::Metric;

use super::{Family, Typed};

/// A typed label set: a struct whose fields are a family's labels, so that lookups cannot
/// misspell a name or forget one. `#[derive(LabelSet)]` (the `macros` feature) writes this
/// impl for a struct with named fields; by hand it looks like this:
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
