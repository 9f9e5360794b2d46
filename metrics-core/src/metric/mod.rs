//! The metric types a registry holds, each a cheap handle over atomics: counters, gauges,
//! histograms and their buckets, summaries, info, exemplars, and the read-only views
//! ([`ValueRef`]) that encoders read them through. This layer knows nothing of names,
//! labels or registries.

mod buckets;
mod counter;
mod exemplar;
mod gauge;
mod histogram;
mod info;
mod summary;
mod value;

pub use buckets::Buckets;
pub(crate) use buckets::{bucket_index, check_bounds};
pub use counter::{Counter, FloatCounter};
pub(crate) use exemplar::ExemplarSlot;
pub use exemplar::{Exemplar, EXEMPLAR_MAX_CHARS};
pub use gauge::{FloatGauge, Gauge, GaugeGuard};
pub(crate) use histogram::Extremes;
pub use histogram::{Histogram, HistogramTimer};
pub use info::Info;
pub(crate) use sealed::Scratch;
pub use summary::{Summary, SummaryConfig, MIN_ACCURACY as MIN_SUMMARY_ACCURACY};
pub use value::{CounterRef, HistogramRef, MetricValue, Number, SummaryRef, ValueRef};

use std::fmt;

use crate::kind::MetricKind;

/// A metric type that a registry can hold and a [`Family`](crate::Family) can label:
/// [`Counter`](crate::Counter), [`FloatCounter`](crate::FloatCounter),
/// [`Gauge`](crate::Gauge), [`FloatGauge`](crate::FloatGauge),
/// [`Histogram`](crate::Histogram), [`Summary`](crate::Summary) and [`Info`](crate::Info).
///
/// Values of these types are cheap handles: clones share the same series.
/// The trait is sealed; custom data reaches the registry through a
/// [`Collector`](crate::Collector).
pub trait Metric: sealed::Sealed + Clone + Send + Sync + fmt::Debug + 'static {}

pub(crate) mod sealed {
    use super::{MetricKind, ValueRef};

    /// Reusable buffers for reading series at scrape time, so that encoding allocates once
    /// per scrape rather than once per series.
    #[derive(Debug, Default)]
    #[allow(unreachable_pub)] // only nameable inside the crate
    pub struct Scratch {
        pub(crate) counts: Vec<u64>,
        pub(crate) quantiles: Vec<(f64, f64)>,
        /// Whether the encoder shows exemplars; reading them takes a lock, so only if asked.
        pub(crate) want_exemplars: bool,
        pub(crate) exemplar: Option<std::sync::Arc<crate::metric::Exemplar>>,
        pub(crate) exemplars: Vec<Option<std::sync::Arc<crate::metric::Exemplar>>>,
    }

    #[allow(unreachable_pub)] // reachable only as the sealed supertrait of `Metric`
    pub trait Sealed {
        /// What a new series of this type is built from (buckets, quantiles, ...).
        type Config: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static;
        const KIND: MetricKind;
        fn create(config: &Self::Config) -> Self;
        /// A new series whose values live in this process's multi-process files; types that
        /// have no place there (info) stay in memory.
        #[cfg(all(feature = "multiprocess", unix))]
        fn create_mapped(config: &Self::Config, series: &crate::multiprocess::Series<'_>) -> Self
        where
            Self: Sized,
        {
            let _ = series;
            Self::create(config)
        }
        /// Back to the state `create` gives, for a removed series that comes back.
        fn reset(&self, config: &Self::Config);
        fn read<'a>(&'a self, config: &'a Self::Config, scratch: &'a mut Scratch) -> ValueRef<'a>;
    }
}
