//! The registry: where metrics are registered, and what a scrape reads.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use crate::collector::Collector;
use crate::error::Error;
use crate::family::{ErasedFamily, DEFAULT_SERIES_CAP};
use crate::kind::MetricKind;
use crate::metric::{
    Buckets, Counter, FloatCounter, FloatGauge, Gauge, Histogram, Metric, Summary, SummaryConfig,
};
use crate::validate;

mod builder;
mod register;
mod sample;
mod scrape;

pub use builder::{FamilyBuilder, InfoBuilder, MetricBuilder, TypedFamilyBuilder};

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
/// and label names; `register()` returns the metric (or its [`Family`](crate::Family)).
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
    /// Shared with the scrapes that run them, so that no lock is held while one collects.
    collectors: RwLock<Vec<Arc<CollectorEntry>>>,
    /// Collectors shared by everything registered through one view (see
    /// [`Registry::view_collector`]).
    shared: Mutex<Vec<SharedCollector>>,
    /// In multi-process mode, this process's files, and the directory's files left out of
    /// scrapes so far.
    #[cfg(all(feature = "multiprocess", unix))]
    multiprocess: Option<Multiprocess>,
    /// The windowed statistics, once enabled.
    windows: OnceLock<Arc<crate::window::Shared>>,
}

/// See [`Registry::multiprocess_view`].
#[cfg(all(feature = "multiprocess", unix))]
#[derive(Debug)]
pub(crate) struct MultiprocessView<'r> {
    pub(crate) files: crate::multiprocess::FamilyFiles,
    pub(crate) prefix: Option<&'r str>,
    pub(crate) const_labels: &'r [(Box<str>, Box<str>)],
}

#[cfg(all(feature = "multiprocess", unix))]
#[derive(Debug)]
struct Multiprocess {
    store: &'static crate::multiprocess::ProcessStore,
    skipped: AtomicU64,
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

/// A collector that [`Registry::view_collector`] made for one view.
struct SharedCollector {
    name: &'static str,
    view: Arc<View>,
    collector: Arc<dyn Any + Send + Sync>,
}

struct CollectorEntry {
    name: Box<str>,
    view: Arc<View>,
    collector: Box<dyn Collector>,
    errors: AtomicU64,
}

/// A registry that does not keep its store alive: for the windows' ticker.
#[derive(Debug)]
pub(crate) struct WeakRegistry {
    store: std::sync::Weak<Store>,
    view: Arc<View>,
}

impl WeakRegistry {
    pub(crate) fn upgrade(&self) -> Option<Registry> {
        Some(Registry {
            store: self.store.upgrade()?,
            view: Arc::clone(&self.view),
        })
    }
}

impl Registry {
    pub(crate) fn downgrade(&self) -> WeakRegistry {
        WeakRegistry {
            store: Arc::downgrade(&self.store),
            view: Arc::clone(&self.view),
        }
    }

    /// The windows' state, made with `config` if there is none yet.
    pub(crate) fn windows_shared(
        &self,
        config: crate::window::WindowConfig,
    ) -> Arc<crate::window::Shared> {
        Arc::clone(
            self.store
                .windows
                .get_or_init(|| Arc::new(crate::window::Shared::new(config))),
        )
    }

    pub(crate) fn windows_enabled(&self) -> Option<Arc<crate::window::Shared>> {
        self.store.windows.get().cloned()
    }

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

    /// A registry in multi-process mode: the values of its counters, gauges, histograms and
    /// summaries live in this process's files in `dir`, and a scrape of it merges the files of
    /// every process there (see [`multiprocess`](crate::multiprocess)). `dir` is created if
    /// need be. Every multi-process registry of a process shares one set of files.
    ///
    /// # Errors
    ///
    /// An [`io::Error`](std::io::Error) naming the directory when it cannot be created or
    /// written, or when this process already writes to another directory.
    #[cfg(all(feature = "multiprocess", unix))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "multiprocess", unix))))]
    pub fn multiprocess(dir: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let store = crate::multiprocess::ProcessStore::open(dir.as_ref())?;
        Ok(Self {
            store: Arc::new(Store {
                multiprocess: Some(Multiprocess {
                    store,
                    skipped: AtomicU64::new(0),
                }),
                ..Store::default()
            }),
            view: Self::new().view,
        })
    }

    /// [`multiprocess`](Self::multiprocess) on the directory in `PROMETHEUS_MULTIPROC_DIR`, the
    /// variable prometheus_client reads.
    ///
    /// # Errors
    ///
    /// As [`multiprocess`](Self::multiprocess), or when the variable is not set.
    #[cfg(all(feature = "multiprocess", unix))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "multiprocess", unix))))]
    pub fn multiprocess_from_env() -> std::io::Result<Self> {
        Self::multiprocess(crate::multiprocess::dir_from_env()?)
    }

    /// In multi-process mode, what a series recorded outside the families (an
    /// `#[instrumented]` site) needs to write its own entries: the files, and the view's
    /// prefix and constant labels.
    #[cfg(all(feature = "multiprocess", unix))]
    pub(crate) fn multiprocess_view(&self) -> Option<MultiprocessView<'_>> {
        let mp = self.store.multiprocess.as_ref()?;
        Some(MultiprocessView {
            files: crate::multiprocess::FamilyFiles {
                store: mp.store,
                mode: None,
            },
            prefix: self.view.prefix.as_deref(),
            const_labels: &self.view.const_labels,
        })
    }

    /// Whether this registry is in multi-process mode.
    #[must_use]
    pub fn is_multiprocess(&self) -> bool {
        #[cfg(all(feature = "multiprocess", unix))]
        return self.store.multiprocess.is_some();
        #[cfg(not(all(feature = "multiprocess", unix)))]
        false
    }

    /// A registry as the environment asks for: with the `multiprocess` feature (on Unix),
    /// in multi-process mode when `PROMETHEUS_MULTIPROC_DIR` is set, as prometheus_client
    /// decides; otherwise in memory.
    ///
    /// # Errors
    ///
    /// As `Registry::multiprocess` (feature `multiprocess`) when the variable names a directory that
    /// cannot be used.
    pub fn from_env() -> std::io::Result<Self> {
        #[cfg(all(feature = "multiprocess", unix))]
        if crate::multiprocess::dir_from_env().is_ok() {
            return Self::multiprocess_from_env();
        }
        Ok(Self::new())
    }

    /// The process-wide registry that the adapters and `#[instrumented]` use unless told
    /// otherwise: [`from_env`](Self::from_env) when it is first used, in memory if that fails
    /// ([`from_env`](Self::from_env) says why).
    ///
    /// With the `process` feature (on by default) it holds the
    /// `ProcessCollector` from the start, under the name
    /// `process`, as Python's and Go's default registries do; not in multi-process mode,
    /// where each scrape would report whichever worker answered it.
    #[must_use]
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let registry = Self::from_env().unwrap_or_else(|_| Self::new());
            #[cfg(feature = "process")]
            if !registry.is_multiprocess() {
                // A new registry has no collector of this name: this cannot fail.
                let _ = registry.register_collector("process", crate::ProcessCollector::new());
            }
            registry
        })
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

    /// Starts registering an [`Info`](crate::Info) metric, exposed as `<name>_info`.
    pub fn info(&self, name: impl Into<String>, help: impl Into<String>) -> InfoBuilder<'_> {
        InfoBuilder::new(self, name.into(), help.into())
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
        collectors.push(Arc::new(CollectorEntry {
            name: name.into(),
            view: Arc::clone(&self.view),
            collector: Box::new(collector),
            errors: AtomicU64::new(0),
        }));
        Ok(())
    }

    /// The collector named `name` that everything registered through this view shares (for
    /// example the list of `#[instrumented]` sites), made by `make` and registered at first
    /// use. Views with the same prefix and constant labels share one; the first is registered
    /// as `name`, the next as `name_2`, and so on.
    pub(crate) fn view_collector<C>(&self, name: &'static str, make: impl FnOnce() -> C) -> Arc<C>
    where
        C: Send + Sync + 'static,
        Arc<C>: Collector,
    {
        let mut shared = self
            .store
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let same_view = |view: &View| {
            view.prefix == self.view.prefix && view.const_labels == self.view.const_labels
        };
        let found = shared
            .iter()
            .find(|s| s.name == name && same_view(&s.view))
            .map(|s| Arc::clone(&s.collector));
        if let Some(collector) = found.and_then(|c| c.downcast::<C>().ok()) {
            return collector;
        }
        let collector = Arc::new(make());
        let earlier = shared.iter().filter(|s| s.name == name).count();
        let registered = if earlier == 0 {
            name.to_owned()
        } else {
            format!("{name}_{}", earlier + 1)
        };
        // The names are vitals' own, so this only fails if a user took one; the collector's
        // owners then record without being exposed, and nothing else changes.
        let _ = self.register_collector(&registered, Arc::clone(&collector));
        shared.push(SharedCollector {
            name,
            view: Arc::clone(&self.view),
            collector: Arc::clone(&collector) as Arc<dyn Any + Send + Sync>,
        });
        collector
    }
}

#[cfg(test)]
mod tests;
