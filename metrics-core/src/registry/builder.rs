//! The builders that `Registry::counter`, `gauge`, `histogram`, ... return.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::family::{DenseFamily, DenseLabelSet, Family, FamilyCore, LabelSet, TypedFamily};
use crate::metric::{Buckets, Histogram, Info, Metric, Summary};

use super::register::Spec;
use super::Registry;

/// Registers a metric of type `M`: set its unit, buckets or quantiles, then
/// [`register`](Self::register) it, or give it [`label_names`](Self::label_names) first.
#[must_use = "nothing is registered until `register` is called"]
pub struct MetricBuilder<'r, M: Metric> {
    registry: &'r Registry,
    name: String,
    help: String,
    unit: Option<String>,
    config: M::Config,
    error: Option<Error>,
    #[cfg(all(feature = "multiprocess", unix))]
    gauge_mode: Option<crate::multiprocess::GaugeMode>,
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
    pub(super) fn new(
        registry: &'r Registry,
        name: String,
        help: String,
        config: M::Config,
    ) -> Self {
        Self {
            registry,
            name,
            help,
            unit: None,
            config,
            error: None,
            #[cfg(all(feature = "multiprocess", unix))]
            gauge_mode: None,
        }
    }

    /// Sets the unit (`seconds`, `bytes`, ...), which the name is given as a suffix unless it
    /// already ends with it. Defaults to none.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Makes this a labeled [`Family`] with these label names.
    pub fn label_names<I, S>(self, names: I) -> FamilyBuilder<'r, M>
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
            inner: self.label_names(L::NAMES.iter().copied()),
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
            .label_names(Vec::<String>::new())
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

// `multiprocess_mode` on the builders of gauges and gauge families.
macro_rules! gauge_mode {
    ($($builder:ident<$m:ty>),*) => {$(
        #[cfg(all(feature = "multiprocess", unix))]
        #[cfg_attr(docsrs, doc(cfg(all(feature = "multiprocess", unix))))]
        impl $builder<'_, $m> {
            /// Sets how this gauge's values from several processes merge in multi-process
            /// mode, by prometheus_client's names. Defaults to
            /// [`GaugeMode::All`](crate::multiprocess::GaugeMode::All) (one series per
            /// process, with a `pid` label), as prometheus_client's. A registry in memory
            /// ignores it.
            pub fn multiprocess_mode(mut self, mode: crate::multiprocess::GaugeMode) -> Self {
                *self.gauge_mode_mut() = Some(mode);
                self
            }
        }
    )*};
}

gauge_mode!(
    MetricBuilder<crate::metric::Gauge>,
    MetricBuilder<crate::metric::FloatGauge>,
    FamilyBuilder<crate::metric::Gauge>,
    FamilyBuilder<crate::metric::FloatGauge>
);

#[cfg(all(feature = "multiprocess", unix))]
impl<M: Metric> MetricBuilder<'_, M> {
    fn gauge_mode_mut(&mut self) -> &mut Option<crate::multiprocess::GaugeMode> {
        &mut self.gauge_mode
    }
}

#[cfg(all(feature = "multiprocess", unix))]
impl<M: Metric> FamilyBuilder<'_, M> {
    fn gauge_mode_mut(&mut self) -> &mut Option<crate::multiprocess::GaugeMode> {
        &mut self.base.gauge_mode
    }
}

impl MetricBuilder<'_, Histogram> {
    /// Sets the bucket bounds. Defaults to [`Buckets::LATENCY_SECONDS`].
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        let extremes = self.config.extremes;
        self.config = buckets;
        self.config.extremes = extremes;
        self
    }

    /// Whether each series keeps its smallest and largest observation for the windowed
    /// statistics ([`Stats::min`](crate::window::Stats::min) and
    /// [`max`](crate::window::Stats::max)). Off by default: it costs two loads per
    /// observation, and a compare-and-swap when an observation is a new extreme of the
    /// current tick. Part of the schema, like the buckets.
    pub fn window_extremes(mut self, on: bool) -> Self {
        self.config.extremes = on;
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

    /// Sets the relative accuracy `α` of the quantiles, at least
    /// [`MIN_SUMMARY_ACCURACY`](crate::MIN_SUMMARY_ACCURACY) (0.0001) and below 1, which bounds
    /// a series' memory. Defaults to 0.01.
    pub fn accuracy(mut self, accuracy: f64) -> Self {
        let result = self.config.set_accuracy(accuracy);
        self.set(result)
    }
}

/// Registers a labeled [`Family`]; made by [`MetricBuilder::label_names`].
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
    /// Defaults to the registry's cap, [`DEFAULT_SERIES_CAP`](crate::DEFAULT_SERIES_CAP) unless
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

    pub(super) fn register_core(self) -> Result<Arc<FamilyCore<M>>, Error> {
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
            #[cfg(all(feature = "multiprocess", unix))]
            gauge_mode: base.gauge_mode,
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

    /// Whether each series keeps its smallest and largest observation for the windowed
    /// statistics: see [`MetricBuilder::window_extremes`].
    pub fn window_extremes(mut self, on: bool) -> Self {
        self.base = self.base.window_extremes(on);
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

impl<'r> InfoBuilder<'r> {
    pub(super) fn new(registry: &'r Registry, name: String, help: String) -> Self {
        Self {
            inner: MetricBuilder::new(registry, name, help, ()),
        }
    }

    /// Registers the info metric with these labels as its one series (value 1).
    ///
    /// # Errors
    ///
    /// As [`FamilyBuilder::register`].
    pub fn register(self, labels: &[(&str, &str)]) -> Result<(), Error> {
        let family = self
            .inner
            .label_names(labels.iter().map(|&(k, _)| k))
            .register()?;
        family.with_labels(labels).map(|_| ())
    }
}
