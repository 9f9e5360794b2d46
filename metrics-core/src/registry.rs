//! The registry: where metrics are registered, and what a scrape reads.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use crate::collector::{Collector, MetricFamily};
use crate::error::Error;
use crate::family::{
    DenseFamily, DenseLabelSet, Descriptor, ErasedFamily, Family, FamilyCore, LabelSet,
    TypedFamily, DEFAULT_SERIES_CAP,
};
use crate::function::FunctionSites;
use crate::kind::MetricKind;
use crate::metric::Info;
use crate::metric::Metric;
use crate::metric::{Buckets, Histogram};
use crate::metric::{Counter, FloatCounter};
use crate::metric::{FloatGauge, Gauge};
use crate::metric::{MetricValue, Number, Scratch, ValueRef};
use crate::metric::{Summary, SummaryConfig};
use crate::validate;
use crate::visit::{FamilyRef, LabelsRef, Pairs, Sink};

/// The counter of label sets redirected to overflow series.
const OVERFLOW_METRIC: &str = "vitals_series_overflow";
/// The counter of failed collections.
const COLLECTOR_ERRORS_METRIC: &str = "vitals_collector_errors";

/// A set of metrics that are scraped together.
///
/// Use [`Registry::global`] for one-line use in an application, and your own `Registry` values
/// in libraries and tests, so that parallel tests never share state by accident. A `Registry`
/// is a cheap handle: clones share the same metrics.
///
/// # Registering
///
/// Each metric type has a builder: `registry.counter(name, help)`, `.gauge`, `.histogram`,
/// `.summary`, `.info` and their float variants. A builder takes a unit, buckets or quantiles,
/// and label names; `register()` returns the metric (or its [`Family`]).
/// Registering the same name again with the same schema returns the metric already there;
/// with another schema it is an [`Error::Conflict`]. Names are checked against the Prometheus
/// rules, and every error names the offending string.
///
/// # Views: namespaces, constant labels and series caps
///
/// [`with_prefix`](Self::with_prefix), [`with_const_labels`](Self::with_const_labels) and
/// [`with_series_cap`](Self::with_series_cap) return a *sub-registry*: a view of the same
/// store that prefixes the names, adds the labels or sets the cap of everything registered
/// through it. Scraping any view exposes the whole store.
///
/// ```
/// use vitals_core::Registry;
///
/// let registry = Registry::new();
/// let db = registry.with_prefix("db")?.with_const_labels(&[("pool", "main")])?;
/// let queries = db.counter("queries", "Queries run.").register()?;
/// queries.inc();
/// assert_eq!(registry.get_sample_value("db_queries_total", &[("pool", "main")]), Some(1.0));
///
/// // The same name and schema again: the same counter.
/// db.counter("queries", "Queries run.").register()?.inc();
/// assert_eq!(queries.get(), 2);
/// // The same name with another type: an error, not a panic.
/// assert!(db.gauge("queries_total", "Queries run.").register().is_err());
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    store: Arc<Store>,
    view: Arc<View>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families = self.store.read().groups.len();
        f.debug_struct("Registry")
            .field("families", &families)
            .field("prefix", &self.view.prefix)
            .field("const_labels", &self.view.const_labels)
            .field("series_cap", &self.view.series_cap)
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// What a view adds to everything registered through it.
#[derive(Debug, Clone)]
struct View {
    prefix: Option<Box<str>>,
    const_labels: Box<[(Box<str>, Box<str>)]>,
    series_cap: usize,
}

#[derive(Default)]
struct Store {
    metrics: RwLock<Metrics>,
    collectors: RwLock<Vec<CollectorEntry>>,
    /// The `#[instrumented]` sites of each view, each list exposed by one collector.
    functions: Mutex<Vec<(Arc<View>, Arc<FunctionSites>)>>,
}

impl Store {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Metrics> {
        self.metrics.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Metrics {
    /// Families by name, in registration order; one group per exposed family name.
    groups: Vec<Group>,
    /// Every sample name a registered family exposes, so that two families cannot collide.
    claimed: HashMap<String, usize>,
}

/// The families registered under one name: one per set of constant labels.
struct Group {
    members: Vec<Arc<dyn ErasedFamily>>,
}

struct CollectorEntry {
    name: Box<str>,
    view: Arc<View>,
    collector: Box<dyn Collector>,
    errors: AtomicU64,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self {
            store: Arc::default(),
            view: Arc::new(View {
                prefix: None,
                const_labels: Box::new([]),
                series_cap: DEFAULT_SERIES_CAP,
            }),
        }
    }

    /// The process-wide registry that the adapters and `#[instrumented]` use unless told
    /// otherwise.
    #[must_use]
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// A view whose metrics are named `<prefix>_<name>` (nested prefixes join with `_`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetricName`] when the prefix is not a valid name part.
    pub fn with_prefix(&self, prefix: &str) -> Result<Self, Error> {
        validate::name_part(prefix)?;
        let prefix = match &self.view.prefix {
            Some(outer) => format!("{outer}_{prefix}"),
            None => prefix.to_owned(),
        };
        validate::metric_name(&prefix)?;
        Ok(self.with_view(View {
            prefix: Some(prefix.into()),
            ..(*self.view).clone()
        }))
    }

    /// A view that adds these labels to every series registered through it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLabelName`] when a name is invalid or already a constant label.
    pub fn with_const_labels(&self, labels: &[(&str, &str)]) -> Result<Self, Error> {
        let mut const_labels: Vec<(Box<str>, Box<str>)> = self.view.const_labels.to_vec();
        const_labels.extend(labels.iter().map(|&(k, v)| (k.into(), v.into())));
        validate::label_names(const_labels.iter().map(|(k, _)| &**k), MetricKind::Unknown)?;
        Ok(self.with_view(View {
            const_labels: const_labels.into(),
            ..(*self.view).clone()
        }))
    }

    /// A view whose labeled families hold at most `cap` series each, unless a family's own
    /// builder says otherwise. Defaults to [`DEFAULT_SERIES_CAP`].
    #[must_use]
    pub fn with_series_cap(&self, cap: usize) -> Self {
        self.with_view(View {
            series_cap: cap,
            ..(*self.view).clone()
        })
    }

    fn with_view(&self, view: View) -> Self {
        Self {
            store: Arc::clone(&self.store),
            view: Arc::new(view),
        }
    }

    /// Starts registering an integer [`Counter`].
    pub fn counter(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, Counter> {
        MetricBuilder::new(self, name.into(), help.into(), ())
    }

    /// Starts registering a [`FloatCounter`].
    pub fn float_counter(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, FloatCounter> {
        MetricBuilder::new(self, name.into(), help.into(), ())
    }

    /// Starts registering an integer [`Gauge`].
    pub fn gauge(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, Gauge> {
        MetricBuilder::new(self, name.into(), help.into(), ())
    }

    /// Starts registering a metric of a crate-internal type (the HTTP recorder's sharded
    /// series), exposed as the plain kind it reads as.
    pub(crate) fn internal<M: Metric>(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        config: M::Config,
    ) -> MetricBuilder<'_, M> {
        MetricBuilder::new(self, name.into(), help.into(), config)
    }

    /// Starts registering a [`FloatGauge`].
    pub fn float_gauge(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, FloatGauge> {
        MetricBuilder::new(self, name.into(), help.into(), ())
    }

    /// Starts registering a [`Histogram`]; buckets default to [`Buckets::LATENCY_SECONDS`].
    pub fn histogram(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, Histogram> {
        MetricBuilder::new(self, name.into(), help.into(), Buckets::default())
    }

    /// Starts registering a [`Summary`]; see its docs for the defaults and the error bound.
    pub fn summary(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, Summary> {
        MetricBuilder::new(self, name.into(), help.into(), SummaryConfig::default())
    }

    /// Starts registering an [`Info`] metric, exposed as `<name>_info`.
    pub fn info(&self, name: impl Into<String>, help: impl Into<String>) -> InfoBuilder<'_> {
        InfoBuilder {
            inner: MetricBuilder::new(self, name.into(), help.into(), ()),
        }
    }

    /// Adds a collector whose families are exposed at every scrape. `name` identifies it in
    /// `vitals_collector_errors_total`. The view's prefix and constant labels apply to its
    /// families too.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when a collector of that name is already registered.
    pub fn register_collector(&self, name: &str, collector: impl Collector) -> Result<(), Error> {
        let mut collectors = self
            .store
            .collectors
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if collectors.iter().any(|c| &*c.name == name) {
            return Err(Error::conflict(
                name,
                "a collector of this name is already registered",
            ));
        }
        collectors.push(CollectorEntry {
            name: name.into(),
            view: Arc::clone(&self.view),
            collector: Box::new(collector),
            errors: AtomicU64::new(0),
        });
        Ok(())
    }

    /// The list of `#[instrumented]` sites of this view, with its collector registered at
    /// first use. Views with the same prefix and constant labels share one list.
    pub(crate) fn function_sites(&self) -> Arc<FunctionSites> {
        let mut lists = self
            .store
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let same_view = |view: &View| {
            view.prefix == self.view.prefix && view.const_labels == self.view.const_labels
        };
        if let Some((_, sites)) = lists.iter().find(|(view, _)| same_view(view)) {
            return Arc::clone(sites);
        }
        let sites = FunctionSites::new();
        let mut name = String::from("vitals_functions");
        if !lists.is_empty() {
            name.push_str(&format!("_{}", lists.len() + 1));
        }
        // The names are unique to vitals, so this only fails if a user took one; the sites
        // then record without being exposed, and nothing else changes.
        let _ = self.register_collector(&name, Arc::clone(&sites));
        lists.push((Arc::clone(&self.view), Arc::clone(&sites)));
        sites
    }

    /// Registers a family, or returns the one already registered with this schema.
    fn register_core<M: Metric>(
        &self,
        spec: Spec,
        config: M::Config,
        cap: usize,
    ) -> Result<Arc<FamilyCore<M>>, Error> {
        let kind = M::KIND;
        let desc = self.describe(spec, kind)?;
        let mut metrics = self
            .store
            .metrics
            .write()
            .unwrap_or_else(PoisonError::into_inner);

        if let Some(&index) = metrics.claimed.get(&*desc.name) {
            let Some(group) = metrics.groups.get_mut(index) else {
                return Err(Error::conflict(
                    &desc.name,
                    "the name is reserved by vitals",
                ));
            };
            let existing = group.members[0].desc();
            if existing.name != desc.name {
                return Err(Error::conflict(
                    &desc.name,
                    format!("a sample of the family {:?} has this name", existing.name),
                ));
            }
            schema_difference(existing, group.members[0].config(), &desc, &config)
                .map_or(Ok(()), |reason| Err(Error::conflict(&desc.name, reason)))?;
            if let Some(member) = group
                .members
                .iter()
                .find(|m| m.desc().const_labels == desc.const_labels)
            {
                return Arc::clone(member)
                    .into_any()
                    .downcast::<FamilyCore<M>>()
                    .map_err(|_| {
                        Error::conflict(
                            &desc.name,
                            "it is registered with another value type (integer or float), or \
                             by vitals' HTTP recorder, whose series are types of its own",
                        )
                    });
            }
            let core = Arc::new(FamilyCore::<M>::new(desc, config, cap));
            group
                .members
                .push(Arc::clone(&core) as Arc<dyn ErasedFamily>);
            return Ok(core);
        }

        let names = sample_names(&desc.name, kind);
        if let Some((taken, owner)) = names
            .iter()
            .find_map(|n| metrics.claimed.get(n).map(|&owner| (n, owner)))
        {
            let owner = metrics.groups.get(owner).map_or_else(
                || "vitals".to_owned(),
                |g| format!("{:?}", g.members[0].desc().name),
            );
            return Err(Error::conflict(
                &desc.name,
                format!("its sample name {taken:?} is already exposed by {owner}"),
            ));
        }
        let index = metrics.groups.len();
        let core = Arc::new(FamilyCore::<M>::new(desc, config, cap));
        metrics.groups.push(Group {
            members: vec![Arc::clone(&core) as Arc<dyn ErasedFamily>],
        });
        for name in names {
            metrics.claimed.insert(name, index);
        }
        Ok(core)
    }

    /// Validates a registration and builds its descriptor, with the view applied.
    fn describe(&self, spec: Spec, kind: MetricKind) -> Result<Descriptor, Error> {
        validate::metric_name(&spec.name)?;
        let mut name = spec.name;
        let suffix = kind.name_suffix();
        if !suffix.is_empty() && name.len() > suffix.len() && name.ends_with(suffix) {
            name.truncate(name.len() - suffix.len());
        }
        if let Some(unit) = &spec.unit {
            validate::name_part(unit)?;
            if !name.ends_with(&format!("_{unit}")) {
                name = format!("{name}_{unit}");
            }
        }
        if let Some(prefix) = &self.view.prefix {
            name = format!("{prefix}_{name}");
        }
        validate::metric_name(&name)?;
        if name == OVERFLOW_METRIC || name == COLLECTOR_ERRORS_METRIC {
            return Err(Error::conflict(&name, "the name is reserved by vitals"));
        }
        validate::label_names(
            spec.labels
                .iter()
                .map(String::as_str)
                .chain(self.view.const_labels.iter().map(|(k, _)| &**k)),
            kind,
        )?;
        Ok(Descriptor {
            name: name.into(),
            help: spec.help.into(),
            unit: spec.unit.map(Into::into),
            kind,
            label_names: spec.labels.into_iter().map(Into::into).collect(),
            const_labels: self.view.const_labels.clone(),
        })
    }

    /// Walks every family and series: registered metrics, then collectors, then vitals' own
    /// counters of overflows and collector failures.
    pub(crate) fn visit(&self, sink: &mut dyn Sink) {
        self.visit_inner(sink, Scratch::default());
    }

    /// As [`visit`](Self::visit), with each series' latest exemplars.
    pub(crate) fn visit_with_exemplars(&self, sink: &mut dyn Sink) {
        self.visit_inner(
            sink,
            Scratch {
                want_exemplars: true,
                ..Scratch::default()
            },
        );
    }

    fn visit_inner(&self, sink: &mut dyn Sink, mut scratch: Scratch) {
        let mut overflowed: Vec<(Box<str>, u64)> = Vec::new();
        {
            let metrics = self.store.read();
            for group in &metrics.groups {
                let desc = group.members[0].desc();
                sink.family(&FamilyRef {
                    name: &desc.name,
                    help: &desc.help,
                    unit: desc.unit.as_deref(),
                    kind: desc.kind,
                });
                for member in &group.members {
                    member.visit(sink, &mut scratch);
                    let n = member.overflowed();
                    if n > 0 {
                        overflowed.push((desc.name.clone(), n));
                    }
                }
            }
        }
        let failures = self.visit_collectors(sink);
        visit_counts(
            sink,
            OVERFLOW_METRIC,
            "Lookups of new label sets redirected to the overflow series because the family \
             reached its series cap.",
            "metric",
            &overflowed,
        );
        visit_counts(
            sink,
            COLLECTOR_ERRORS_METRIC,
            "Scrapes at which a custom collector failed or gave an invalid family.",
            "collector",
            &failures,
        );
    }

    /// Runs every collector, exposes the valid families and returns the failure counts.
    fn visit_collectors(&self, sink: &mut dyn Sink) -> Vec<(Box<str>, u64)> {
        let collectors = self
            .store
            .collectors
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut emitted: HashSet<String> = HashSet::new();
        let mut failures = Vec::new();
        for entry in collectors.iter() {
            // A panicking collector must not take the scrape (or the server) down with it.
            let result = catch_unwind(AssertUnwindSafe(|| entry.collector.collect()));
            let mut failed = false;
            if let Ok(Ok(families)) = result {
                for family in &families {
                    let name = match &entry.view.prefix {
                        Some(prefix) => format!("{prefix}_{}", family.name),
                        None => family.name.clone(),
                    };
                    if self.collector_family_ok(family, &name, &entry.view, &mut emitted) {
                        visit_collected(sink, family, &name, &entry.view.const_labels);
                    } else {
                        failed = true;
                    }
                }
            } else {
                failed = true;
            }
            if failed {
                entry.errors.fetch_add(1, Ordering::Relaxed);
            }
            let errors = entry.errors.load(Ordering::Relaxed);
            if errors > 0 {
                failures.push((entry.name.clone(), errors));
            }
        }
        failures
    }

    fn collector_family_ok(
        &self,
        family: &MetricFamily,
        name: &str,
        view: &View,
        emitted: &mut HashSet<String>,
    ) -> bool {
        if family.check(name).is_err() {
            return false;
        }
        let clashes_with_consts = family.samples.iter().any(|(labels, _)| {
            labels
                .iter()
                .any(|(k, _)| view.const_labels.iter().any(|(c, _)| **c == **k))
        });
        if clashes_with_consts {
            return false;
        }
        let names = sample_names(name, family.kind);
        let metrics = self.store.read();
        if names.iter().any(|n| {
            metrics.claimed.contains_key(n)
                || emitted.contains(n)
                || n == OVERFLOW_METRIC
                || n == COLLECTOR_ERRORS_METRIC
        }) {
            return false;
        }
        emitted.extend(names);
        true
    }

    /// The value of one sample, as the text exposition would show it, without encoding or
    /// parsing text: for tests and health checks, like prometheus_client's
    /// `get_sample_value`.
    ///
    /// `name` is the sample name (`requests_total`, `latency_seconds_bucket`,
    /// `latency_seconds_count`, ...) and `labels` the sample's labels in any order, constant
    /// labels and `le` or `quantile` included (`le` and `quantile` compare as numbers, so
    /// `"1"` and `"1.0"` both match the bucket bound 1). Returns `None` when no sample matches.
    ///
    /// ```
    /// use vitals_core::Registry;
    ///
    /// let registry = Registry::new();
    /// let requests = registry.counter("requests", "Requests.").labels(["status"]).register()?;
    /// requests.labels(&[("status", "200")])?.inc();
    /// assert_eq!(registry.get_sample_value("requests_total", &[("status", "200")]), Some(1.0));
    /// assert_eq!(registry.get_sample_value("requests_total", &[("status", "500")]), None);
    /// # Ok::<(), vitals_core::Error>(())
    /// ```
    #[must_use]
    pub fn get_sample_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut finder = SampleFinder {
            name,
            labels,
            family: None,
            found: None,
        };
        self.visit(&mut finder);
        finder.found
    }
}

/// What a builder hands to registration.
struct Spec {
    name: String,
    help: String,
    unit: Option<String>,
    labels: Vec<String>,
}

/// Why two registrations under one name differ, if they do.
fn schema_difference<C: PartialEq + 'static>(
    existing: &Descriptor,
    existing_config: &dyn std::any::Any,
    new: &Descriptor,
    new_config: &C,
) -> Option<String> {
    if existing.kind != new.kind {
        return Some(format!(
            "it is registered as a {}, not a {}",
            existing.kind.prometheus_name(),
            new.kind.prometheus_name()
        ));
    }
    if existing.label_names != new.label_names {
        return Some(format!(
            "it is registered with labels {:?}, not {:?}",
            existing.label_names, new.label_names
        ));
    }
    if existing.help != new.help {
        return Some(format!(
            "it is registered with help {:?}, not {:?}",
            existing.help, new.help
        ));
    }
    if existing.unit != new.unit {
        return Some(format!(
            "it is registered with unit {:?}, not {:?}",
            existing.unit, new.unit
        ));
    }
    if existing_config.downcast_ref::<C>() != Some(new_config) {
        return Some("it is registered with other buckets, quantiles or value type".to_owned());
    }
    None
}

/// The sample names a family of this kind exposes, and the family name itself.
fn sample_names(name: &str, kind: MetricKind) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        MetricKind::Counter => &["", "_total", "_created"],
        MetricKind::Histogram => &["", "_bucket", "_sum", "_count", "_created"],
        MetricKind::Summary => &["", "_sum", "_count", "_created"],
        MetricKind::Info => &["", "_info"],
        MetricKind::Gauge | MetricKind::Unknown => &[""],
    };
    suffixes.iter().map(|s| format!("{name}{s}")).collect()
}

fn visit_collected(
    sink: &mut dyn Sink,
    family: &MetricFamily,
    name: &str,
    consts: &[(Box<str>, Box<str>)],
) {
    sink.family(&FamilyRef {
        name,
        help: &family.help,
        unit: family.unit.as_deref(),
        kind: family.kind,
    });
    for (labels, value) in &family.samples {
        let labels = LabelsRef {
            pairs: Pairs::Owned(labels),
            consts,
            rendered: None,
        };
        sink.series(&labels, value.as_ref());
    }
}

/// Exposes one of vitals' own counters, one series per name that has a count.
fn visit_counts(
    sink: &mut dyn Sink,
    name: &str,
    help: &str,
    label: &str,
    counts: &[(Box<str>, u64)],
) {
    if counts.is_empty() {
        return;
    }
    let family = MetricFamily {
        name: name.to_owned(),
        help: help.to_owned(),
        unit: None,
        kind: MetricKind::Counter,
        samples: counts
            .iter()
            .map(|(value, n)| {
                (
                    vec![(label.to_owned(), value.to_string())],
                    MetricValue::counter(*n),
                )
            })
            .collect(),
    };
    visit_collected(sink, &family, name, &[]);
}

/// A sample of the walk: its name suffix, its extra label and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Extra {
    None,
    Le(f64),
    Quantile(f64),
}

/// Expands one series into the samples of the Prometheus text format.
pub(crate) fn for_each_sample(value: ValueRef<'_>, mut f: impl FnMut(&'static str, Extra, Number)) {
    match value {
        ValueRef::Counter(c) => {
            f("_total", Extra::None, c.value);
            if let Some(created) = c.created {
                f("_created", Extra::None, Number::F64(created));
            }
        }
        ValueRef::Gauge(n) => f("", Extra::None, n),
        ValueRef::Info => f("_info", Extra::None, Number::U64(1)),
        ValueRef::Histogram(h) => {
            for (i, &count) in h.cumulative.iter().enumerate() {
                let bound = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                f("_bucket", Extra::Le(bound), Number::U64(count));
            }
            f("_sum", Extra::None, Number::F64(h.sum));
            f("_count", Extra::None, Number::U64(h.count()));
            if let Some(created) = h.created {
                f("_created", Extra::None, Number::F64(created));
            }
        }
        ValueRef::Summary(s) => {
            for &(q, v) in s.quantiles {
                f("", Extra::Quantile(q), Number::F64(v));
            }
            f("_sum", Extra::None, Number::F64(s.sum));
            f("_count", Extra::None, Number::U64(s.count));
            if let Some(created) = s.created {
                f("_created", Extra::None, Number::F64(created));
            }
        }
    }
}

struct SampleFinder<'a> {
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
    family: Option<String>,
    found: Option<f64>,
}

impl Sink for SampleFinder<'_> {
    fn family(&mut self, family: &FamilyRef<'_>) {
        self.family = self
            .name
            .starts_with(family.name)
            .then(|| family.name.to_owned());
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let Some(family) = &self.family else {
            return;
        };
        if self.found.is_some() {
            return;
        }
        let suffix_wanted = &self.name[family.len()..];
        let mut own = 0;
        let mut own_match = true;
        labels.for_each(|k, v| {
            own += 1;
            own_match &= self.labels.iter().any(|&(wk, wv)| wk == k && wv == v);
        });
        if !own_match {
            return;
        }
        for_each_sample(value, |suffix, extra, n| {
            if suffix != suffix_wanted || self.found.is_some() {
                return;
            }
            let (extra_name, extra_value) = match extra {
                Extra::None => (None, 0.0),
                Extra::Le(b) => (Some("le"), b),
                Extra::Quantile(q) => (Some("quantile"), q),
            };
            let wanted_extra = self.labels.len() == own + usize::from(extra_name.is_some());
            let extra_matches = extra_name.is_none_or(|en| {
                self.labels
                    .iter()
                    .any(|&(k, v)| k == en && parse_float(v) == Some(extra_value))
            });
            if wanted_extra && extra_matches {
                self.found = Some(n.as_f64());
            }
        });
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Registers a metric of type `M`: set its unit, buckets or quantiles, then
/// [`register`](Self::register) it, or give it [`labels`](Self::labels) first.
#[must_use = "nothing is registered until `register` is called"]
pub struct MetricBuilder<'r, M: Metric> {
    registry: &'r Registry,
    name: String,
    help: String,
    unit: Option<String>,
    config: M::Config,
    error: Option<Error>,
}

impl<M: Metric> fmt::Debug for MetricBuilder<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricBuilder")
            .field("name", &self.name)
            .field("unit", &self.unit)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<'r, M: Metric> MetricBuilder<'r, M> {
    fn new(registry: &'r Registry, name: String, help: String, config: M::Config) -> Self {
        Self {
            registry,
            name,
            help,
            unit: None,
            config,
            error: None,
        }
    }

    /// Sets the unit (`seconds`, `bytes`, ...), which the name is given as a suffix unless it
    /// already ends with it. Defaults to none.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Makes this a labeled [`Family`] with these label names.
    pub fn labels<I, S>(self, names: I) -> FamilyBuilder<'r, M>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FamilyBuilder {
            base: self,
            labels: names.into_iter().map(Into::into).collect(),
            cap: None,
        }
    }

    /// Makes this a [`TypedFamily`] whose label sets are values of `L`.
    pub fn typed_labels<L: LabelSet>(self) -> TypedFamilyBuilder<'r, M, L> {
        TypedFamilyBuilder {
            inner: self.labels(L::NAMES.iter().copied()),
            labels: PhantomData,
        }
    }

    /// Registers the metric, or returns the one registered before with the same schema.
    ///
    /// # Errors
    ///
    /// An invalid name, unit, constant label or option, or a [`Error::Conflict`] with a
    /// metric registered before under the same name.
    pub fn register(self) -> Result<M, Error> {
        Ok(self
            .labels(Vec::<String>::new())
            .register_core()?
            .only_series())
    }

    fn set(mut self, result: Result<(), Error>) -> Self {
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        self
    }
}

impl MetricBuilder<'_, Histogram> {
    /// Sets the bucket bounds. Defaults to [`Buckets::LATENCY_SECONDS`].
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.config = buckets;
        self
    }
}

impl MetricBuilder<'_, Summary> {
    /// Sets the quantiles to report, each in `[0, 1]` and strictly increasing. Defaults to
    /// 0.5, 0.9 and 0.99.
    pub fn quantiles(mut self, quantiles: &[f64]) -> Self {
        let result = self.config.set_quantiles(quantiles);
        self.set(result)
    }

    /// Sets how long observations stay in the quantile window. Defaults to 10 minutes.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        let result = self.config.set_max_age(max_age);
        self.set(result)
    }

    /// Sets how many steps the window slides in. Defaults to 5.
    pub fn age_buckets(mut self, age_buckets: u32) -> Self {
        let result = self.config.set_age_buckets(age_buckets);
        self.set(result)
    }

    /// Sets the relative accuracy `α` of the quantiles, in `(0, 1)`. Defaults to 0.01.
    pub fn accuracy(mut self, accuracy: f64) -> Self {
        let result = self.config.set_accuracy(accuracy);
        self.set(result)
    }
}

/// Registers a labeled [`Family`]; made by [`MetricBuilder::labels`].
#[must_use = "nothing is registered until `register` is called"]
pub struct FamilyBuilder<'r, M: Metric> {
    base: MetricBuilder<'r, M>,
    labels: Vec<String>,
    cap: Option<usize>,
}

impl<M: Metric> fmt::Debug for FamilyBuilder<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyBuilder")
            .field("base", &self.base)
            .field("labels", &self.labels)
            .field("cap", &self.cap)
            .finish()
    }
}

impl<M: Metric> FamilyBuilder<'_, M> {
    /// Sets how many series the family holds before new label sets go to its overflow series.
    /// Defaults to the registry's cap, [`DEFAULT_SERIES_CAP`] unless
    /// [`Registry::with_series_cap`] set another.
    pub fn series_cap(mut self, cap: usize) -> Self {
        self.cap = Some(cap);
        self
    }

    /// Registers the family, or returns the one registered before with the same schema.
    ///
    /// # Errors
    ///
    /// As [`MetricBuilder::register`], and an invalid, reserved or repeated label name.
    pub fn register(self) -> Result<Family<M>, Error> {
        self.register_core().map(Family::from_core)
    }

    fn register_core(self) -> Result<Arc<FamilyCore<M>>, Error> {
        let base = self.base;
        if let Some(e) = base.error {
            return Err(e);
        }
        let cap = self.cap.unwrap_or(base.registry.view.series_cap);
        let spec = Spec {
            name: base.name,
            help: base.help,
            unit: base.unit,
            labels: self.labels,
        };
        base.registry.register_core::<M>(spec, base.config, cap)
    }
}

impl FamilyBuilder<'_, Histogram> {
    /// Sets the bucket bounds. Defaults to [`Buckets::LATENCY_SECONDS`].
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.base = self.base.buckets(buckets);
        self
    }
}

/// Registers a [`TypedFamily`]; made by [`MetricBuilder::typed_labels`].
#[must_use = "nothing is registered until `register` is called"]
pub struct TypedFamilyBuilder<'r, M: Metric, L> {
    inner: FamilyBuilder<'r, M>,
    labels: PhantomData<fn(&L)>,
}

impl<M: Metric, L> fmt::Debug for TypedFamilyBuilder<'_, M, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedFamilyBuilder")
            .field(&self.inner)
            .finish()
    }
}

impl<M: Metric, L: LabelSet> TypedFamilyBuilder<'_, M, L> {
    /// As [`FamilyBuilder::series_cap`].
    pub fn series_cap(mut self, cap: usize) -> Self {
        self.inner = self.inner.series_cap(cap);
        self
    }

    /// Registers the family, or returns the one registered before with the same schema.
    ///
    /// # Errors
    ///
    /// As [`FamilyBuilder::register`].
    pub fn register(self) -> Result<TypedFamily<M, L>, Error> {
        self.inner.register().map(TypedFamily::new)
    }

    /// Registers the family with a direct index for each of `L`'s label sets, so that a
    /// lookup is an array access: the fastest way to record with labels known in advance.
    ///
    /// # Errors
    ///
    /// As [`FamilyBuilder::register`].
    pub fn register_dense(self) -> Result<DenseFamily<M, L>, Error>
    where
        L: DenseLabelSet,
    {
        self.register().map(DenseFamily::new)
    }
}

/// Registers an [`Info`] metric; made by [`Registry::info`].
#[must_use = "nothing is registered until `register` is called"]
#[derive(Debug)]
pub struct InfoBuilder<'r> {
    inner: MetricBuilder<'r, Info>,
}

impl InfoBuilder<'_> {
    /// Registers the info metric with these labels as its one series (value 1).
    ///
    /// # Errors
    ///
    /// As [`FamilyBuilder::register`].
    pub fn register(self, labels: &[(&str, &str)]) -> Result<(), Error> {
        let family = self
            .inner
            .labels(labels.iter().map(|&(k, _)| k))
            .register()?;
        family.labels(labels).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_registering_the_same_schema_returns_the_same_metric() {
        let r = Registry::new();
        let a = r.counter("a", "help").register().unwrap();
        let b = r.counter("a_total", "help").register().unwrap();
        a.inc();
        assert_eq!(b.get(), 1);
        let f1 = r.histogram("h", "help").labels(["x"]).register().unwrap();
        let f2 = r.histogram("h", "help").labels(["x"]).register().unwrap();
        f1.label_values(&["1"]).unwrap().observe(1.0);
        assert_eq!(f2.label_values(&["1"]).unwrap().count(), 1);
    }

    #[test]
    fn a_different_schema_is_a_typed_conflict_that_names_the_difference() {
        let r = Registry::new();
        r.counter("jobs", "Jobs.")
            .labels(["queue"])
            .register()
            .unwrap();
        let cases = [
            r.gauge("jobs", "Jobs.").register().map(|_| ()).unwrap_err(),
            r.counter("jobs", "Jobs.")
                .labels(["other"])
                .register()
                .map(|_| ())
                .unwrap_err(),
            r.counter("jobs", "Other help.")
                .labels(["queue"])
                .register()
                .map(|_| ())
                .unwrap_err(),
            r.float_counter("jobs", "Jobs.")
                .labels(["queue"])
                .register()
                .map(|_| ())
                .unwrap_err(),
            // `jobs_total` is the sample name of the counter.
            r.gauge("jobs_total", "Jobs.")
                .register()
                .map(|_| ())
                .unwrap_err(),
        ];
        for err in cases {
            assert!(matches!(err, Error::Conflict { .. }), "{err}");
        }
        r.histogram("lat", "L.").register().unwrap();
        let err = r
            .histogram("lat", "L.")
            .buckets(Buckets::new([1.0]).unwrap())
            .register()
            .unwrap_err();
        assert!(err.to_string().contains("buckets"), "{err}");
    }

    #[test]
    fn names_are_validated_with_the_offending_string_in_the_error() {
        let r = Registry::new();
        let err = r.counter("bad-name", "h").register().unwrap_err();
        assert!(err.to_string().contains("\"bad-name\""), "{err}");
        let err = r.counter("ok", "h").labels(["__x"]).register().unwrap_err();
        assert!(err.to_string().contains("\"__x\""), "{err}");
        let err = r.histogram("h", "h").labels(["le"]).register().unwrap_err();
        assert!(err.to_string().contains("le"), "{err}");
        let err = r
            .summary("s", "h")
            .labels(["quantile"])
            .register()
            .unwrap_err();
        assert!(err.to_string().contains("quantile"), "{err}");
        assert!(r.counter("x", "h").unit("sec onds").register().is_err());
        assert!(r.with_prefix("a-b").is_err());
        assert!(r.with_const_labels(&[("__a", "1")]).is_err());
        assert!(r.gauge("vitals_series_overflow", "h").register().is_err());
        let err = r
            .summary("s", "h")
            .quantiles(&[2.0])
            .register()
            .unwrap_err();
        assert!(err.to_string().contains('2'), "{err}");
    }

    #[test]
    fn a_const_label_cannot_repeat_a_family_label() {
        let r = Registry::new()
            .with_const_labels(&[("env", "prod")])
            .unwrap();
        let err = r.counter("c", "h").labels(["env"]).register().unwrap_err();
        assert!(err.to_string().contains("env"), "{err}");
    }

    #[test]
    fn units_prefixes_and_const_labels_shape_the_exposed_name() {
        let r = Registry::new();
        let sub = r.with_prefix("app").unwrap().with_prefix("db").unwrap();
        sub.histogram("query_duration", "h")
            .unit("seconds")
            .register()
            .unwrap()
            .observe(0.1);
        assert_eq!(
            r.get_sample_value("app_db_query_duration_seconds_count", &[]),
            Some(1.0)
        );
        // Two views with different constant labels share one family name.
        let a = r.with_const_labels(&[("shard", "a")]).unwrap();
        let b = r.with_const_labels(&[("shard", "b")]).unwrap();
        a.counter("ops", "Ops.").register().unwrap().inc();
        b.counter("ops", "Ops.").register().unwrap().inc_by(2);
        assert_eq!(
            r.get_sample_value("ops_total", &[("shard", "a")]),
            Some(1.0)
        );
        assert_eq!(
            r.get_sample_value("ops_total", &[("shard", "b")]),
            Some(2.0)
        );
    }

    #[test]
    fn get_sample_value_reads_every_sample_kind() {
        let r = Registry::new();
        let h = r
            .histogram("h_seconds", "h")
            .buckets(Buckets::new([1.0, 2.0]).unwrap())
            .register()
            .unwrap();
        h.observe(1.5);
        h.observe(0.5);
        assert_eq!(
            r.get_sample_value("h_seconds_bucket", &[("le", "1")]),
            Some(1.0)
        );
        assert_eq!(
            r.get_sample_value("h_seconds_bucket", &[("le", "2.0")]),
            Some(2.0)
        );
        assert_eq!(
            r.get_sample_value("h_seconds_bucket", &[("le", "+Inf")]),
            Some(2.0)
        );
        assert_eq!(r.get_sample_value("h_seconds_sum", &[]), Some(2.0));
        assert_eq!(r.get_sample_value("h_seconds_count", &[]), Some(2.0));
        assert_eq!(r.get_sample_value("h_seconds", &[]), None);
        assert_eq!(
            r.get_sample_value("h_seconds_bucket", &[]),
            None,
            "le is required"
        );
        let g = r.float_gauge("g", "g").register().unwrap();
        g.set(-2.5);
        assert_eq!(r.get_sample_value("g", &[]), Some(-2.5));
        r.info("build", "b").register(&[("version", "1")]).unwrap();
        assert_eq!(
            r.get_sample_value("build_info", &[("version", "1")]),
            Some(1.0)
        );
        assert_eq!(r.get_sample_value("build_info", &[]), None);
    }

    #[test]
    fn the_cap_redirects_new_label_sets_and_counts_them() {
        let r = Registry::new().with_series_cap(3);
        let f = r.counter("c", "h").labels(["path"]).register().unwrap();
        for i in 0..10 {
            f.labels(&[("path", &format!("/{i}"))]).unwrap().inc();
        }
        f.labels(&[("path", "/0")]).unwrap().inc();
        assert_eq!(f.len(), 3);
        assert_eq!(f.overflowed(), 7);
        assert_eq!(r.get_sample_value("c_total", &[("path", "/0")]), Some(2.0));
        assert_eq!(
            r.get_sample_value("c_total", &[("path", "__overflow__")]),
            Some(7.0)
        );
        assert_eq!(
            r.get_sample_value("vitals_series_overflow_total", &[("metric", "c")]),
            Some(7.0)
        );
    }

    #[test]
    fn remove_and_clear_drop_series_from_the_exposition() {
        let r = Registry::new();
        let f = r.gauge("g", "h").labels(["a", "b"]).register().unwrap();
        for i in 0..5 {
            f.label_values(&[&i.to_string(), "x"]).unwrap().set(i);
        }
        assert!(f.remove(&[("b", "x"), ("a", "1")]).unwrap());
        assert!(!f.remove(&[("b", "x"), ("a", "1")]).unwrap());
        assert_eq!(f.len(), 4);
        assert_eq!(r.get_sample_value("g", &[("a", "1"), ("b", "x")]), None);
        // The series moved into the hole is still found, with its value.
        assert_eq!(
            r.get_sample_value("g", &[("a", "4"), ("b", "x")]),
            Some(4.0)
        );
        assert_eq!(f.label_values(&["4", "x"]).unwrap().get(), 4);
        f.clear();
        assert!(f.is_empty());
        assert_eq!(r.get_sample_value("g", &[("a", "4"), ("b", "x")]), None);
        assert_eq!(
            f.label_values(&["4", "x"]).unwrap().get(),
            0,
            "a new series after clear"
        );
    }

    #[test]
    fn label_mismatches_are_errors_that_say_what_is_wrong() {
        let r = Registry::new();
        let f = r.counter("c", "h").labels(["a", "b"]).register().unwrap();
        let missing = f.labels(&[("a", "1")]).unwrap_err().to_string();
        assert!(missing.contains("`b` is missing"), "{missing}");
        let unknown = f
            .labels(&[("a", "1"), ("b", "2"), ("c", "3")])
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown label `c`"), "{unknown}");
        let twice = f.labels(&[("a", "1"), ("a", "2")]).unwrap_err().to_string();
        assert!(twice.contains("more than once"), "{twice}");
        assert!(f.label_values(&["1"]).is_err());
        assert!(f.is_empty(), "failed lookups create nothing");
    }

    #[test]
    fn failing_and_invalid_collectors_are_counted_and_do_not_spoil_the_scrape() {
        let r = Registry::new();
        r.counter("kept", "h").register().unwrap().inc();
        r.register_collector("broken", || Err("database is down".into()))
            .unwrap();
        r.register_collector(
            "panicking",
            || -> Result<Vec<MetricFamily>, crate::CollectError> { panic!("collector bug") },
        )
        .unwrap();
        r.register_collector("invalid", || {
            Ok(vec![
                MetricFamily::gauge("bad name", "h").with_sample(&[], MetricValue::gauge(1)),
                MetricFamily::gauge("kept_total", "clashes")
                    .with_sample(&[], MetricValue::gauge(1)),
                MetricFamily::counter("neg", "h").with_sample(&[], MetricValue::counter(-1.0)),
                MetricFamily::gauge("good", "h").with_sample(&[("x", "1")], MetricValue::gauge(7)),
            ])
        })
        .unwrap();
        assert!(r.register_collector("broken", || Ok(vec![])).is_err());
        assert_eq!(r.get_sample_value("kept_total", &[]), Some(1.0));
        assert_eq!(r.get_sample_value("good", &[("x", "1")]), Some(7.0));
        assert_eq!(r.get_sample_value("neg_total", &[]), None);
        for name in ["broken", "panicking", "invalid"] {
            // Each walk runs the collectors once more; the count only grows.
            let n = r
                .get_sample_value("vitals_collector_errors_total", &[("collector", name)])
                .unwrap();
            assert!(n >= 1.0, "{name}: {n}");
        }
    }

    #[test]
    fn the_global_registry_is_one_registry() {
        let a = Registry::global();
        let b = Registry::global();
        assert!(Arc::ptr_eq(&a.store, &b.store));
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Registry>();
        check::<Family<Counter>>();
        check::<Family<Histogram>>();
        check::<Summary>();
        check::<Error>();
        check::<MetricFamily>();
    }
}
