//! What `#[instrumented]` expands to: one static [`Site`] per function, a [`Call`] guard per
//! call, and the scrape-time collector that exposes every site of a registry.
//!
//! The hot path touches only the site's own atomics: a count of started calls, then one
//! bucket and the sum of nanoseconds when the call ends. Nothing is looked up or hashed per
//! call. Neither `function_calls_total` nor the in-flight gauge is stored apart: a scrape
//! derives the calls from the bucket counts (like a histogram's `_count`, so the two never
//! disagree) and the calls in flight as started minus finished, which saves the decrement
//! that a gauge would cost every call.
//!
//! The atomics are split into per-thread shards (see [`crate::util::shard`]), allocated at the
//! function's first call: a function called on every core at once would otherwise pass its
//! cache lines from core to core at each call, which cost more than the rest of the call. A
//! thread that owns its shard writes it with plain stores.

/// The names `#[instrumented]` records under (autometrics' names, under both naming
/// presets): the calls counter as exposed, the latency histogram, the in-progress gauge.
pub(crate) const CALLS_TOTAL: &str = "function_calls_total";
pub(crate) const DURATION: &str = "function_calls_duration_seconds";
pub(crate) const CONCURRENT: &str = "function_calls_concurrent";

use std::sync::{Mutex, OnceLock, PoisonError};

use crate::metric::Buckets;
use crate::registry::Registry;
use crate::util::shard::Slots;

pub mod outcome;
mod sites;

pub(crate) use sites::FunctionSites;

/// The upper bounds of the default duration buckets, in seconds
/// ([`Buckets::LATENCY_SECONDS`]).
pub const DEFAULT_BOUNDS: &[f64] = Buckets::LATENCY_SECONDS;

/// The number of buckets of the default bounds, `+Inf` included.
pub const DEFAULT_BUCKETS: usize = 15;

const _: () = assert!(DEFAULT_BOUNDS.len() + 1 == DEFAULT_BUCKETS);

/// The `result` label value of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned, and the value is not an error.
    Ok = 0,
    /// The call returned an error (an `Err`, a 5xx response, or `error_if`), or panicked.
    Error = 1,
    /// The future was dropped before it completed.
    Dropped = 2,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Dropped];

    /// The `result` label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Dropped => "dropped",
        }
    }
}

/// What the macro knows about a function at compile time.
#[derive(Debug)]
pub struct SiteMeta {
    /// The `function` label; for a method whose `impl` the macro does not see, the method's
    /// name, which [`Call::start`] prefixes with the `Self` type it is given.
    pub function: &'static str,
    /// `module_path!()` at the function.
    pub module: &'static str,
    /// The duration buckets' upper bounds, strictly increasing (checked by the macro).
    pub bounds: &'static [f64],
    /// Constant labels, checked by the macro.
    pub labels: &'static [(&'static str, &'static str)],
}

/// One instrumented function's metrics, a `static` in the function's body.
///
/// `B` is the number of buckets, `+Inf` included.
#[derive(Debug)]
pub struct Site<const B: usize> {
    meta: SiteMeta,
    function: OnceLock<Box<str>>,
    /// Set at the first call, with the registration: per shard, the calls started (those in
    /// flight are these minus the bucket counts), then per [`Outcome`] the `B` bucket counts
    /// (not cumulative) and the sum of nanoseconds.
    slots: OnceLock<Slots>,
    /// In multi-process mode, the cells of this process's files that replace `slots`.
    #[cfg(all(feature = "multiprocess", unix))]
    mapped: OnceLock<mapped::Cells>,
    /// The traced calls' exemplars, made at the first: per [`Outcome`], one per bucket and
    /// one for the calls counter.
    #[cfg(feature = "opentelemetry")]
    exemplars: OnceLock<Box<[crate::http::trace::TraceSlot]>>,
    /// When a call last kept its trace.
    #[cfg(feature = "opentelemetry")]
    traced: crate::http::trace::TraceSampler,
}

/// Where the count of started calls is in a shard.
const STARTED: usize = 0;

impl<const B: usize> Site<B> {
    /// A site with no calls yet.
    #[must_use]
    pub const fn new(meta: SiteMeta) -> Self {
        Self {
            meta,
            function: OnceLock::new(),
            slots: OnceLock::new(),
            #[cfg(all(feature = "multiprocess", unix))]
            mapped: OnceLock::new(),
            #[cfg(feature = "opentelemetry")]
            exemplars: OnceLock::new(),
            #[cfg(feature = "opentelemetry")]
            traced: crate::http::trace::TraceSampler::new(),
        }
    }

    /// The current OpenTelemetry span's trace, for a call that started at `at`: at most one
    /// call of the site per millisecond keeps one (exemplars are samples; a call within the
    /// millisecond pays a load and does not read the context).
    #[cfg(feature = "opentelemetry")]
    #[inline]
    fn trace(&self, at: u64) -> Option<crate::http::TraceContext> {
        if !self.traced.due(at) {
            return None;
        }
        let context = crate::http::TraceContext::current()?;
        self.traced.kept(at);
        Some(context)
    }

    /// Keeps a traced call's exemplars: on its bucket of `outcome` and on its calls counter.
    #[cfg(feature = "opentelemetry")]
    #[cold]
    fn keep_exemplars(&self, trace: &crate::http::TraceContext, outcome: Outcome, nanos: u64) {
        let slots = self.exemplars.get_or_init(|| {
            (0..3 * (B + 1))
                .map(|_| crate::http::trace::TraceSlot::default())
                .collect()
        });
        #[allow(clippy::cast_precision_loss)]
        let seconds = nanos as f64 * 1e-9;
        let bucket = crate::metric::bucket_index(self.meta.bounds, seconds).min(B - 1);
        let at = outcome as usize * (B + 1);
        if let Some(slot) = slots.get(at + bucket) {
            slot.set(trace, seconds);
        }
        if let Some(slot) = slots.get(at + B) {
            slot.set(trace, 1.0);
        }
    }

    /// Where bucket `bucket` of `outcome` is in a shard; bucket `B` is the sum.
    const fn slot(outcome: Outcome, bucket: usize) -> usize {
        1 + outcome as usize * (B + 1) + bucket
    }

    #[inline]
    fn record(&self, slots: &Slots, outcome: Outcome, nanos: u64) {
        #[allow(clippy::cast_precision_loss)]
        let seconds = nanos as f64 * 1e-9;
        let index = crate::metric::bucket_index(self.meta.bounds, seconds);
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cells) = self.mapped.get() {
            return cells.record(outcome, index.min(B - 1), seconds);
        }
        let shard = crate::util::shard::current();
        slots.add(shard, Self::slot(outcome, B), nanos);
        // The bounds come from the macro (B - 1 of them); `min` keeps a bad length in range.
        // Release (as every `add`): a scrape that sees this call finished also sees it
        // started.
        slots.add(shard, Self::slot(outcome, index.min(B - 1)), 1);
    }

    /// Adds the site to its registry, once, and gives its shards.
    #[cold]
    #[inline(never)]
    fn register(
        &'static self,
        registry: &'static Registry,
        self_type: Option<&'static str>,
    ) -> &'static Slots {
        static LOCK: Mutex<()> = Mutex::new(());
        let _lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = self.slots.get() {
            return slots;
        }
        let function = match self_type {
            Some(type_name) => format!("{}::{}", short_type_name(type_name), self.meta.function),
            None => self.meta.function.to_owned(),
        };
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(view) = registry.multiprocess_view() {
            if let Some(cells) = mapped::Cells::new(&view, &function, &self.meta) {
                let _ = self.mapped.set(cells);
            }
        }
        let _ = self.function.set(function.into_boxed_str());
        crate::util::clock::init();
        // Before the site is added, so that a scrape always finds it complete.
        let slots = self
            .slots
            .get_or_init(|| Slots::new(Self::slot(Outcome::Dropped, B) + 1));
        registry
            .view_collector("vitals_functions", || {
                FunctionSites::new(registry.is_multiprocess())
            })
            .add(self);
        slots
    }
}

/// An `#[instrumented]` site's series in multi-process files, under the names and labels its
/// collector exposes in memory mode.
#[cfg(all(feature = "multiprocess", unix))]
mod mapped {
    use crate::multiprocess::{Cell, FileKind, GaugeMode, Series};
    use crate::registry::MultiprocessView;

    use super::{Outcome, SiteMeta};

    #[derive(Debug)]
    pub(super) struct Cells {
        /// Calls in progress (`livesum`).
        concurrent: Cell,
        /// Per outcome: the calls counter, then the duration buckets (`+Inf` last), then the
        /// duration sum.
        outcomes: Box<[Cell]>,
        buckets: usize,
    }

    impl Cells {
        pub(super) fn new(
            view: &MultiprocessView<'_>,
            function: &str,
            meta: &SiteMeta,
        ) -> Option<Self> {
            let name = |base: &str| match view.prefix {
                Some(prefix) => format!("{prefix}_{base}"),
                None => base.to_owned(),
            };
            let mut labels: Vec<(&str, &str)> =
                vec![("function", function), ("module", meta.module)];
            labels.extend(meta.labels.iter().copied());
            labels.extend(view.const_labels.iter().map(|(k, v)| (&**k, &**v)));
            let (concurrent_name, calls_name, duration_name) = (
                name(super::CONCURRENT),
                name(super::CALLS_TOTAL.trim_end_matches("_total")),
                name(super::DURATION),
            );
            let concurrent = Series::new(
                &view.files,
                &concurrent_name,
                "Calls of functions instrumented with #[instrumented] in progress.",
                labels.clone(),
            )
            .cell(FileKind::Gauge(GaugeMode::LiveSum), "", None)?;
            let mut outcomes = Vec::new();
            for outcome in Outcome::ALL {
                let mut labels = labels.clone();
                labels.push(("result", outcome.label()));
                let calls = Series::new(
                    &view.files,
                    &calls_name,
                    "Calls of functions instrumented with #[instrumented], by result.",
                    labels.clone(),
                );
                outcomes.push(calls.cell(FileKind::Counter, "_total", None)?);
                let duration = Series::new(
                    &view.files,
                    &duration_name,
                    "Duration of calls of functions instrumented with #[instrumented], by result.",
                    labels,
                );
                for le in meta.bounds.iter().copied().chain([f64::INFINITY]) {
                    outcomes.push(duration.cell(FileKind::Histogram, "_bucket", Some(le))?);
                }
                outcomes.push(duration.cell(FileKind::Histogram, "_sum", None)?);
            }
            Some(Self {
                concurrent,
                outcomes: outcomes.into(),
                buckets: meta.bounds.len() + 1,
            })
        }

        #[inline]
        pub(super) fn start(&self) {
            self.concurrent.add(1.0);
        }

        #[inline]
        pub(super) fn record(&self, outcome: Outcome, bucket: usize, seconds: f64) {
            let at = outcome as usize * (self.buckets + 2);
            if let Some(cells) = self.outcomes.get(at..at + self.buckets + 2) {
                cells[0].add(1.0);
                cells[1 + bucket.min(self.buckets - 1)].add(1.0);
                cells[self.buckets + 1].add(seconds);
            }
            self.concurrent.add(-1.0);
        }
    }
}

/// `alloc::vec::Vec<u8>` → `Vec`, `&mut app::Store<T>` → `Store`.
fn short_type_name(full: &str) -> &str {
    let mut name = full.trim_start_matches('&').trim_start();
    name = name.strip_prefix("mut ").unwrap_or(name);
    name = name.strip_prefix("dyn ").unwrap_or(name);
    if name.starts_with(['(', '[']) {
        return name;
    }
    let without_generics = name.split('<').next().unwrap_or(name);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

/// One call in progress: made when the call starts, records when [`finish`](Self::finish)ed
/// or, if the call never finishes (a panic, a dropped future), when dropped.
#[derive(Debug)]
#[must_use = "a call records when it finishes or is dropped"]
pub struct Call<const B: usize> {
    site: &'static Site<B>,
    slots: &'static Slots,
    /// A reading of [`crate::util::clock`].
    started: u64,
    /// The current OpenTelemetry span's trace when the call started, if it keeps it.
    #[cfg(feature = "opentelemetry")]
    trace: Option<crate::http::TraceContext>,
}

impl<const B: usize> Call<B> {
    /// Starts a call: registers the site at its first call, counts the call in flight and
    /// reads the clock. `self_type` gives the `Self` type's name of a method whose `impl` the
    /// macro did not see (the label is then `Type::method`), `None` otherwise.
    #[inline]
    pub fn start(
        site: &'static Site<B>,
        registry: impl FnOnce() -> &'static Registry,
        self_type: impl FnOnce() -> Option<&'static str>,
    ) -> Self {
        let slots = match site.slots.get() {
            Some(slots) => slots,
            None => site.register(registry(), self_type()),
        };
        #[cfg(all(feature = "multiprocess", unix))]
        match site.mapped.get() {
            Some(cells) => cells.start(),
            None => slots.add(crate::util::shard::current(), STARTED, 1),
        }
        #[cfg(not(all(feature = "multiprocess", unix)))]
        slots.add(crate::util::shard::current(), STARTED, 1);
        let started = crate::util::clock::now();
        Self {
            site,
            slots,
            started,
            #[cfg(feature = "opentelemetry")]
            trace: site.trace(started),
        }
    }

    /// Records the call with this outcome.
    #[inline]
    pub fn finish(self, outcome: Outcome) {
        self.end(outcome);
        std::mem::forget(self);
    }

    #[inline]
    fn end(&self, outcome: Outcome) {
        let nanos = crate::util::clock::nanos_since(self.started);
        self.site.record(self.slots, outcome, nanos);
        #[cfg(feature = "opentelemetry")]
        if let Some(trace) = &self.trace {
            self.site.keep_exemplars(trace, outcome, nanos);
        }
    }
}

impl<const B: usize> Drop for Call<B> {
    fn drop(&mut self) {
        // Not finished: the function panicked, or its future was dropped before it completed.
        let outcome = if std::thread::panicking() {
            Outcome::Error
        } else {
            Outcome::Dropped
        };
        self.end(outcome);
    }
}

/// Calls `f`: makes the closure that wraps a synchronous body `FnOnce`, so that it may return
/// borrows of what it captured, as the function could.
#[inline(always)]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
// The borrows are the point: they pick the impl, as in the macro's expansion.
#[allow(clippy::needless_borrow)]
mod tests;
