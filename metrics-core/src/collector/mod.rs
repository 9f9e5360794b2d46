//! Custom collectors: metrics computed at scrape time from somewhere else.

use crate::kind::MetricKind;
use crate::metric::MetricValue;

mod pool;
#[cfg(feature = "process")]
mod process;
#[cfg(feature = "tokio-runtime")]
mod runtime;

pub use pool::{PoolCollector, PoolStats};
#[cfg(feature = "process")]
pub use process::ProcessCollector;
#[cfg(feature = "tokio-runtime")]
pub use runtime::TokioCollector;

/// The error a [`Collector`] may return; it is counted, never propagated to the scrape.
pub type CollectError = Box<dyn std::error::Error + Send + Sync>;

/// Gives metric families at every scrape, such as a connection pool's size or figures read
/// from the operating system. Register one with
/// [`Registry::register_collector`](crate::Registry::register_collector).
///
/// A collector that returns an error or panics does not spoil the scrape: its families are
/// left out, the rest of the registry is exposed, and
/// `vitals_collector_errors_total{collector="<name>"}` counts the failure. A family with an
/// invalid name, labels or shape, or one whose name is already taken, is left out and counted
/// the same way. Keep `collect` fast: it runs on every scrape.
///
/// Closures are collectors too:
///
/// ```
/// use vitals_core::{MetricFamily, MetricValue, Registry};
///
/// struct Pool { size: usize, checked_out: usize }
/// let pool = std::sync::Arc::new(Pool { size: 10, checked_out: 3 });
///
/// let registry = Registry::new();
/// registry.register_collector("db_pool", move || {
///     Ok(vec![
///         MetricFamily::gauge("db_pool_size", "Connection pool size.")
///             .with_sample(&[], MetricValue::gauge(pool.size)),
///         MetricFamily::gauge("db_pool_checked_out", "Connections in use.")
///             .with_sample(&[], MetricValue::gauge(pool.checked_out)),
///     ])
/// })?;
/// assert_eq!(registry.get_sample_value("db_pool_checked_out", &[]), Some(3.0));
/// # Ok::<(), vitals_core::Error>(())
/// ```
pub trait Collector: Send + Sync + 'static {
    /// The families to expose at this scrape.
    ///
    /// # Errors
    ///
    /// Any error: the scrape goes on without this collector's families and counts the failure.
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError>;

    /// How many parts of its input the collector has left out so far, cumulative: files it
    /// could not read, entries it could not parse. The registry adds them to
    /// `vitals_collector_errors_total{collector="<name>"}`, so that a collector which serves
    /// what it could read still says that it left something out. `0` unless overridden.
    fn skipped_total(&self) -> u64 {
        0
    }
}

impl<F> Collector for F
where
    F: Fn() -> Result<Vec<MetricFamily>, CollectError> + Send + Sync + 'static,
{
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        self()
    }
}

/// One metric family as a collector gives it: name, help, type and samples.
///
/// A counter's name may be given with or without `_total`, an info's with or without `_info`;
/// the exposition adds the suffix once.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) unit: Option<String>,
    pub(crate) kind: MetricKind,
    pub(crate) samples: Vec<(Vec<(String, String)>, MetricValue)>,
}

impl MetricFamily {
    /// An empty family of the given type.
    #[must_use]
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricKind) -> Self {
        let mut name = name.into();
        let suffix = kind.name_suffix();
        if !suffix.is_empty() && name.len() > suffix.len() && name.ends_with(suffix) {
            name.truncate(name.len() - suffix.len());
        }
        Self {
            name,
            help: help.into(),
            unit: None,
            kind,
            samples: Vec::new(),
        }
    }

    /// An empty counter family.
    #[must_use]
    pub fn counter(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(name, help, MetricKind::Counter)
    }

    /// An empty gauge family.
    #[must_use]
    pub fn gauge(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(name, help, MetricKind::Gauge)
    }

    /// An empty histogram family.
    #[must_use]
    pub fn histogram(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(name, help, MetricKind::Histogram)
    }

    /// An empty summary family.
    #[must_use]
    pub fn summary(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(name, help, MetricKind::Summary)
    }

    /// An empty info family.
    #[must_use]
    pub fn info(name: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(name, help, MetricKind::Info)
    }

    /// Declares the unit, which the family name must end with (`_seconds`, `_bytes`, ...).
    #[must_use]
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Adds a sample with these labels.
    #[must_use]
    pub fn with_sample(mut self, labels: &[(&str, &str)], value: MetricValue) -> Self {
        self.add_sample(labels, value);
        self
    }

    /// Adds a sample with these labels.
    pub fn add_sample(&mut self, labels: &[(&str, &str)], value: MetricValue) {
        let labels = labels
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        self.samples.push((labels, value));
    }

    /// Checks everything the exposition formats require, so that one bad family cannot spoil
    /// a scrape.
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        crate::validate::metric_name(name).map_err(|e| e.to_string())?;
        if let Some(unit) = &self.unit {
            crate::validate::name_part(unit).map_err(|e| e.to_string())?;
            if self.kind == MetricKind::Info {
                return Err(format!("info family {name:?} cannot have a unit"));
            }
            if !name.ends_with(&format!("_{unit}")) {
                return Err(format!(
                    "name {name:?} does not end with its unit `_{unit}`"
                ));
            }
        }
        for (labels, value) in &self.samples {
            crate::validate::label_names(labels.iter().map(|(k, _)| k.as_str()), self.kind)
                .map_err(|e| e.to_string())?;
            let fits = value.kind() == self.kind
                || (self.kind == MetricKind::Unknown
                    && matches!(value.kind(), MetricKind::Gauge | MetricKind::Counter));
            if !fits {
                return Err(format!(
                    "a {:?} sample in {:?} family {name:?}",
                    value.kind(),
                    self.kind
                ));
            }
            value.check()?;
        }
        Ok(())
    }
}
