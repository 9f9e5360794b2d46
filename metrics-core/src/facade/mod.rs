//! A recorder for the [`metrics`](https://docs.rs/metrics) facade (feature `metrics-facade`):
//! `metrics::counter!`, `gauge!` and `histogram!` calls, yours and those of the crates that
//! record through the facade (tokio-metrics, metrics-process, ...), recorded into a vitals
//! registry and served with everything else on its `/metrics`.
//!
//! ```
//! use vitals_core::facade::FacadeRecorder;
//! use vitals_core::Registry;
//!
//! let registry = Registry::new();
//! let recorder = FacadeRecorder::new(&registry);
//! // In a service: `recorder.install()?` once, at start-up, makes it the global recorder.
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("jobs_done", metrics::Unit::Count, "Jobs finished.");
//!     metrics::counter!("jobs_done", "queue" => "mail", "kind" => "send").increment(2);
//!     metrics::counter!("jobs_done", "kind" => "send", "queue" => "mail").increment(1);
//!     metrics::describe_histogram!("job.duration", metrics::Unit::Milliseconds, "Job time.");
//!     metrics::histogram!("job.duration").record(250.0);
//! });
//! let labels = [("queue", "mail"), ("kind", "send")];
//! assert_eq!(registry.get_sample_value("jobs_done_total", &labels), Some(3.0));
//! assert_eq!(registry.get_sample_value("job_duration_seconds_sum", &[]), Some(0.25));
//! # Ok::<(), vitals_core::Error>(())
//! ```
//!
//! # Names, types and units
//!
//! - Names are sanitised the Prometheus way: each character outside `[a-zA-Z0-9_:]` becomes
//!   `_` (`job.duration` is `job_duration`), and a name that starts with a digit gets a
//!   leading `_`. Label names likewise, without `:`. Label values are kept as they are.
//! - Counters are exposed with `_total` (a name that ends with it already is not given it
//!   twice). A unit given with `describe_*!` before the metric's first use is appended to the
//!   name unless it ends with it already, in the base unit Prometheus names: seconds for
//!   milli-, micro- and nanoseconds, bytes for kibi- to tebibytes, `ratio` for percent; values
//!   are converted (after `describe_histogram!("x", Unit::Milliseconds, ..)`,
//!   `histogram!("x").record(250.0)` observes 0.25 in `x_seconds`). A counter in a converted unit is a float counter. Other units (counts, bits
//!   per second) add no suffix.
//! - The description given with `describe_*!` before the first use is the HELP text;
//!   without one, the HELP says where the metric came from. Descriptions given later, and
//!   units that differ from the first, are ignored: a registered family's schema does not
//!   change.
//! - Histograms are vitals histograms with [`Buckets::LATENCY_SECONDS`] unless
//!   [`buckets_for_name`](FacadeRecorderBuilder::buckets_for_name) or
//!   [`buckets_for_prefix`](FacadeRecorderBuilder::buckets_for_prefix) say otherwise (an
//!   exact name first, then the longest prefix).
//!
//! # Labels, caps and conflicts
//!
//! One name is one family, whose label names are those of its first use, in any order
//! (`"a" => .., "b" => ..` and `"b" => .., "a" => ..` are the same series). Families have the
//! registry's series cap, and overflow as every vitals family does. A use that cannot be
//! recorded (the name already registered in the registry as another type or with other
//! labels, other label names than the family's, a name that is not valid even after
//! sanitising) never panics inside the caller's macro: it gets a handle that records nothing,
//! and `vitals_facade_errors_total{metric=..}` counts it, once per distinct key.
//!
//! # Cost
//!
//! The macros look their handle up on every call (`metrics` calls the recorder's `register_*`
//! each time); the recorder answers from a cache keyed by the macro's precomputed key hash,
//! under a read lock, so a repeated call costs a hash lookup and an `Arc` clone before its
//! atomic add. Keeping the handle (`let jobs = counter!(..)`) skips both. The cache holds at
//! most [`MAX_CACHED_KEYS`] keys and the descriptions [`MAX_DESCRIBED`] names, so a flood of
//! label values costs bounded memory (the families' caps bound the series). BENCHMARKS.md
//! compares it with metrics-exporter-prometheus.
//!
//! Only the `metrics` 0.24 facade is served (0.24.6 or later): each semver-incompatible
//! release of `metrics` has its own global recorder, so crates that still record through an
//! older one are not seen.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use metrics::{Key, KeyName, Metadata, SharedString, Unit};

use crate::error::Error;
use crate::family::Family;
use crate::metric::{Buckets, Counter, FloatCounter, FloatGauge, Histogram};
use crate::registry::Registry;

#[cfg(test)]
mod tests;

/// The family counting uses of the facade that could not be recorded.
const ERRORS_METRIC: &str = "vitals_facade_errors";
/// The most keys (name and label values) whose handles are cached; past it, a key's handle is
/// made from its family at each call.
pub const MAX_CACHED_KEYS: usize = 16_384;
/// The most metric names whose descriptions are kept; past it, descriptions of new names are
/// ignored.
pub const MAX_DESCRIBED: usize = 4_096;

/// A [`metrics::Recorder`] that records into a vitals [`Registry`]: see the [module
/// docs](self). A cheap handle.
#[derive(Clone)]
pub struct FacadeRecorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FacadeRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacadeRecorder")
            .field("registry", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

/// Options of a [`FacadeRecorder`].
#[derive(Debug, Clone)]
#[must_use = "nothing is recorded until `build` is called"]
pub struct FacadeRecorderBuilder {
    registry: Registry,
    by_name: HashMap<String, Buckets>,
    by_prefix: Vec<(String, Buckets)>,
}

impl FacadeRecorderBuilder {
    /// Histograms named `name` (as the macros name it, before sanitising) get `buckets`.
    pub fn buckets_for_name(mut self, name: impl Into<String>, buckets: Buckets) -> Self {
        self.by_name.insert(name.into(), buckets);
        self
    }

    /// Histograms whose names start with `prefix` get `buckets`, unless a longer prefix or
    /// their exact name says otherwise.
    pub fn buckets_for_prefix(mut self, prefix: impl Into<String>, buckets: Buckets) -> Self {
        self.by_prefix.push((prefix.into(), buckets));
        self.by_prefix
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    /// The recorder.
    pub fn build(self) -> FacadeRecorder {
        let errors = self
            .registry
            .counter(
                ERRORS_METRIC,
                "Uses of the metrics facade that could not be recorded (a conflicting name or \
                 label names), once per distinct key.",
            )
            .label_names(["metric"])
            .register()
            .ok();
        FacadeRecorder {
            inner: Arc::new(Inner {
                registry: self.registry,
                by_name: self.by_name,
                by_prefix: self.by_prefix,
                errors,
                described: RwLock::default(),
                families: RwLock::default(),
                handles: RwLock::default(),
            }),
        }
    }
}

impl FacadeRecorder {
    /// A recorder into `registry`, with the default buckets for every histogram.
    pub fn new(registry: &Registry) -> Self {
        Self::builder(registry).build()
    }

    /// Starts configuring a recorder into `registry`.
    pub fn builder(registry: &Registry) -> FacadeRecorderBuilder {
        FacadeRecorderBuilder {
            registry: registry.clone(),
            by_name: HashMap::new(),
            by_prefix: Vec::new(),
        }
    }

    /// Makes this the process's global `metrics` recorder.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when a global recorder is set already (`metrics` allows one per
    /// process).
    pub fn install(self) -> Result<(), Error> {
        metrics::set_global_recorder(self).map_err(|_| {
            Error::conflict(
                "metrics",
                "a global recorder of the metrics facade is set already",
            )
        })
    }
}

/// A description given before first use.
#[derive(Debug, Clone)]
struct Described {
    help: SharedString,
    unit: Option<Unit>,
}

/// One registered family, by sanitised name.
#[derive(Debug, Clone)]
struct Registered {
    kind: Kind,
    /// The sanitised label names, in the family's order.
    labels: Vec<String>,
    /// What each recorded value is multiplied by (a unit converted to its base).
    scale: f64,
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
enum Target {
    Counter(Labeled<Counter>),
    FloatCounter(Labeled<FloatCounter>),
    Gauge(Labeled<FloatGauge>),
    Histogram(Labeled<Histogram>),
}

#[derive(Debug, Clone)]
enum Labeled<M: crate::Metric> {
    Plain(M),
    Family(Family<M>),
}

impl<M: crate::Metric + Clone> Labeled<M> {
    fn series(&self, labels: &[(&str, &str)]) -> Result<M, Error> {
        match self {
            Self::Plain(m) => Ok(m.clone()),
            Self::Family(f) => f.with_labels(labels).cloned(),
        }
    }
}

struct Inner {
    registry: Registry,
    by_name: HashMap<String, Buckets>,
    by_prefix: Vec<(String, Buckets)>,
    errors: Option<Family<Counter>>,
    described: RwLock<HashMap<String, Described>>,
    families: RwLock<HashMap<String, Registered>>,
    /// Every key seen, with its handle per type (one that records nothing when it failed).
    handles: RwLock<HashMap<Key, [Option<Handle>; 3]>>,
}

#[derive(Clone)]
enum Handle {
    Counter(metrics::Counter),
    Gauge(metrics::Gauge),
    Histogram(metrics::Histogram),
}

/// A character allowed in a metric name (`colon`) or a label name.
fn allowed(c: char, colon: bool) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':')
}

/// `name` with every character Prometheus does not allow replaced by `_`, and a `_` before a
/// leading digit.
pub(crate) fn sanitize(name: &str, colon: bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        out.push('_');
    }
    out.extend(
        name.chars()
            .map(|c| if allowed(c, colon) { c } else { '_' }),
    );
    out
}

/// The base unit a `metrics` unit is exposed in, and the factor to it.
fn base_unit(unit: Option<Unit>) -> (Option<&'static str>, f64) {
    match unit {
        Some(Unit::Seconds) => (Some("seconds"), 1.0),
        Some(Unit::Milliseconds) => (Some("seconds"), 1e-3),
        Some(Unit::Microseconds) => (Some("seconds"), 1e-6),
        Some(Unit::Nanoseconds) => (Some("seconds"), 1e-9),
        Some(Unit::Bytes) => (Some("bytes"), 1.0),
        Some(Unit::Kibibytes) => (Some("bytes"), 1024.0),
        Some(Unit::Mebibytes) => (Some("bytes"), 1024.0 * 1024.0),
        Some(Unit::Gibibytes) => (Some("bytes"), 1024.0 * 1024.0 * 1024.0),
        Some(Unit::Tebibytes) => (Some("bytes"), 1024.0 * 1024.0 * 1024.0 * 1024.0),
        Some(Unit::Percent) => (Some("ratio"), 0.01),
        _ => (None, 1.0),
    }
}

impl Inner {
    fn describe(&self, key: &KeyName, unit: Option<Unit>, help: SharedString) {
        let mut described = self
            .described
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if described.len() >= MAX_DESCRIBED && !described.contains_key(key.as_str()) {
            return;
        }
        described
            .entry(key.as_str().to_owned())
            .or_insert(Described { help, unit });
    }

    /// The handle for `key` as `kind`: from the cache, or made (and cached) now.
    fn handle(&self, key: &Key, kind: Kind) -> Handle {
        let cached = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(|handles| handles[kind as usize].clone());
        if let Some(handle) = cached {
            return handle;
        }
        let handle = self.make(key, kind).unwrap_or_else(|_| {
            self.count_error(key.name());
            Handle::noop(kind)
        });
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if handles.len() >= MAX_CACHED_KEYS && !handles.contains_key(key) {
            // A flood of label values: the family's cap and overflow bound the series, and
            // the cache stays bounded too; such keys are looked up in their family each time.
            return handle;
        }
        let slot = &mut handles.entry(key.clone()).or_default()[kind as usize];
        // Another thread may have made it meanwhile: the first one stays.
        slot.get_or_insert(handle).clone()
    }

    fn count_error(&self, name: &str) {
        if let Some(errors) = &self.errors {
            if let Ok(counter) = errors.with_labels(&[("metric", &sanitize(name, true))]) {
                counter.inc();
            }
        }
    }

    fn make(&self, key: &Key, kind: Kind) -> Result<Handle, Error> {
        let mut labels: Vec<(String, &str)> = key
            .labels()
            .map(|l| (sanitize(l.key(), false), l.value()))
            .collect();
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let registered = self.family(key.name(), kind, &labels)?;
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let scale = registered.scale;
        Ok(match &registered.target {
            Target::Counter(target) => Handle::Counter(metrics::Counter::from_arc(Arc::new(
                IntCounter(target.series(&pairs)?),
            ))),
            Target::FloatCounter(target) => Handle::Counter(metrics::Counter::from_arc(Arc::new(
                ScaledCounter(target.series(&pairs)?, scale),
            ))),
            Target::Gauge(target) => Handle::Gauge(metrics::Gauge::from_arc(Arc::new(
                ScaledGauge(target.series(&pairs)?, scale),
            ))),
            Target::Histogram(target) => Handle::Histogram(metrics::Histogram::from_arc(Arc::new(
                ScaledHistogram(target.series(&pairs)?, scale),
            ))),
        })
    }

    /// The family of `name`: registered before, or now. `labels` are sorted by name.
    fn family(
        &self,
        name: &str,
        kind: Kind,
        labels: &[(String, &str)],
    ) -> Result<Registered, Error> {
        let base = sanitize(name, true);
        let label_names: Vec<String> = labels.iter().map(|(k, _)| k.clone()).collect();
        let check = |registered: &Registered| {
            if registered.kind != kind {
                return Err(Error::conflict(
                    &base,
                    format!(
                        "used through the metrics facade as a {:?} and as a {kind:?}",
                        registered.kind
                    ),
                ));
            }
            if registered.labels != label_names {
                return Err(Error::LabelMismatch {
                    metric: base.clone(),
                    reason: format!(
                        "the facade used it with labels {:?} first, now with {label_names:?}",
                        registered.labels
                    ),
                });
            }
            Ok(registered.clone())
        };
        if let Some(registered) = self
            .families
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&base)
        {
            return check(registered);
        }
        let mut families = self
            .families
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(registered) = families.get(&base) {
            return check(registered);
        }
        let described = self
            .described
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        let (unit, scale) = base_unit(described.as_ref().and_then(|d| d.unit));
        let help = described.map_or_else(
            || format!("{name}, recorded through the metrics facade."),
            |d| d.help.into_owned(),
        );
        let registered = Registered {
            kind,
            labels: label_names.clone(),
            scale,
            target: self.register(&base, name, &help, unit, scale, kind, &label_names)?,
        };
        families.insert(base, registered.clone());
        Ok(registered)
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        base: &str,
        name: &str,
        help: &str,
        unit: Option<&str>,
        scale: f64,
        kind: Kind,
        labels: &[String],
    ) -> Result<Target, Error> {
        let registry = &self.registry;
        macro_rules! labeled {
            ($builder:expr) => {{
                let builder = $builder;
                let builder = match unit {
                    Some(unit) => builder.unit(unit),
                    None => builder,
                };
                if labels.is_empty() {
                    Labeled::Plain(builder.register()?)
                } else {
                    Labeled::Family(builder.label_names(labels.iter().cloned()).register()?)
                }
            }};
        }
        let counter_name = base.strip_suffix("_total").unwrap_or(base);
        Ok(match kind {
            Kind::Counter if scale == 1.0 => {
                Target::Counter(labeled!(registry.counter(counter_name, help)))
            }
            Kind::Counter => {
                Target::FloatCounter(labeled!(registry.float_counter(counter_name, help)))
            }
            Kind::Gauge => Target::Gauge(labeled!(registry.float_gauge(base, help))),
            Kind::Histogram => {
                let buckets = self.buckets(name);
                Target::Histogram(labeled!(registry.histogram(base, help).buckets(buckets)))
            }
        })
    }

    fn buckets(&self, name: &str) -> Buckets {
        if let Some(buckets) = self.by_name.get(name) {
            return buckets.clone();
        }
        self.by_prefix
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map_or_else(Buckets::default, |(_, b)| b.clone())
    }
}

impl Handle {
    fn noop(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Self::Counter(metrics::Counter::noop()),
            Kind::Gauge => Self::Gauge(metrics::Gauge::noop()),
            Kind::Histogram => Self::Histogram(metrics::Histogram::noop()),
        }
    }
}

impl metrics::Recorder for FacadeRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe(&key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe(&key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe(&key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        match self.inner.handle(key, Kind::Counter) {
            Handle::Counter(c) => c,
            _ => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        match self.inner.handle(key, Kind::Gauge) {
            Handle::Gauge(g) => g,
            _ => metrics::Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        match self.inner.handle(key, Kind::Histogram) {
            Handle::Histogram(h) => h,
            _ => metrics::Histogram::noop(),
        }
    }
}

/// An integer counter: `increment` is one atomic add.
struct IntCounter(Counter);

impl metrics::CounterFn for IntCounter {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }

    /// Raises the counter to `value` if it is below: the facade's way of following a counter
    /// kept elsewhere. Two callers racing add at most what the higher of them asks.
    fn absolute(&self, value: u64) {
        let now = self.0.get();
        if value > now {
            self.0.inc_by(value - now);
        }
    }
}

/// A counter in a converted unit.
struct ScaledCounter(FloatCounter, f64);

impl metrics::CounterFn for ScaledCounter {
    #[allow(clippy::cast_precision_loss)]
    fn increment(&self, value: u64) {
        let _ = self.0.inc_by(value as f64 * self.1);
    }

    #[allow(clippy::cast_precision_loss)]
    fn absolute(&self, value: u64) {
        let target = value as f64 * self.1;
        let now = self.0.get();
        if target > now {
            let _ = self.0.inc_by(target - now);
        }
    }
}

struct ScaledGauge(FloatGauge, f64);

impl metrics::GaugeFn for ScaledGauge {
    fn increment(&self, value: f64) {
        self.0.add(value * self.1);
    }

    fn decrement(&self, value: f64) {
        self.0.sub(value * self.1);
    }

    fn set(&self, value: f64) {
        self.0.set(value * self.1);
    }
}

struct ScaledHistogram(Histogram, f64);

impl metrics::HistogramFn for ScaledHistogram {
    fn record(&self, value: f64) {
        self.0.observe(value * self.1);
    }
}
