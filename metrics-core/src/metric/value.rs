//! What a series holds at scrape time, in a form every encoder and custom collector shares.

use std::sync::Arc;

use crate::kind::MetricKind;
use crate::metric::Exemplar;

/// A sample value, kept in the type it was recorded in so that integers print exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Number {
    /// An unsigned integer (integer counters).
    U64(u64),
    /// A signed integer (integer gauges).
    I64(i64),
    /// A floating-point number.
    F64(f64),
}

impl Number {
    /// The value as a float (large integers may round).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        match self {
            Self::U64(v) => v as f64,
            Self::I64(v) => v as f64,
            Self::F64(v) => v,
        }
    }
}

/// One series' value at scrape time, borrowed from the metric or collector that holds it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ValueRef<'a> {
    /// A counter's total.
    Counter(CounterRef<'a>),
    /// A gauge's current value.
    Gauge(Number),
    /// A histogram's buckets, sum and count.
    Histogram(HistogramRef<'a>),
    /// A summary's quantiles, sum and count.
    Summary(SummaryRef<'a>),
    /// An info series (its value is always 1).
    Info,
}

/// A counter at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct CounterRef<'a> {
    pub(crate) value: Number,
    pub(crate) created: Option<f64>,
    pub(crate) exemplar: Option<&'a Exemplar>,
}

impl<'a> CounterRef<'a> {
    /// The total.
    #[must_use]
    pub fn value(&self) -> Number {
        self.value
    }

    /// When the series was created (or last brought back from zero), in seconds since the
    /// Unix epoch.
    #[must_use]
    pub fn created(&self) -> Option<f64> {
        self.created
    }

    /// The latest exemplar, when the encoder asked for exemplars and one was recorded.
    #[must_use]
    pub fn exemplar(&self) -> Option<&'a Exemplar> {
        self.exemplar
    }
}

/// A histogram at scrape time.
///
/// `cumulative` has one entry per bound plus a last one for `+Inf`, which is the count: the
/// shape itself guarantees that `_count` equals the `+Inf` bucket.
#[derive(Debug, Clone, Copy)]
pub struct HistogramRef<'a> {
    pub(crate) bounds: &'a [f64],
    /// The bounds as the text formats write them, when the metric rendered them in advance.
    pub(crate) rendered_bounds: Option<&'a [Box<str>]>,
    pub(crate) cumulative: &'a [u64],
    pub(crate) sum: f64,
    pub(crate) created: Option<f64>,
    /// The latest exemplar of each bucket, `+Inf` included; empty when there are none or the
    /// encoder did not ask for them.
    pub(crate) exemplars: &'a [Option<Arc<Exemplar>>],
    /// The extremes the windowed statistics take at each tick, when the histogram keeps them.
    pub(crate) extremes: Option<&'a super::histogram::Extremes>,
}

impl<'a> HistogramRef<'a> {
    /// The finite upper bounds, strictly increasing.
    #[must_use]
    pub fn bounds(&self) -> &'a [f64] {
        self.bounds
    }

    /// Cumulative counts: one per bound, then the `+Inf` bucket.
    #[must_use]
    pub fn cumulative_counts(&self) -> &'a [u64] {
        self.cumulative
    }

    /// The number of observations (the `+Inf` bucket).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The sum of all observations.
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// When the series was created, in seconds since the Unix epoch.
    #[must_use]
    pub fn created(&self) -> Option<f64> {
        self.created
    }

    /// The latest exemplar of bucket `i` (`+Inf` is the last), if any.
    #[must_use]
    pub fn exemplar(&self, i: usize) -> Option<&'a Exemplar> {
        self.exemplars.get(i).and_then(|e| e.as_deref())
    }
}

/// A summary at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct SummaryRef<'a> {
    pub(crate) quantiles: &'a [(f64, f64)],
    pub(crate) sum: f64,
    pub(crate) count: u64,
    pub(crate) created: Option<f64>,
}

impl<'a> SummaryRef<'a> {
    /// `(quantile, value)` pairs; a value is NaN when the window holds no observation.
    #[must_use]
    pub fn quantiles(&self) -> &'a [(f64, f64)] {
        self.quantiles
    }

    /// The sum of all observations since the summary was created.
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The number of observations since the summary was created.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// When the series was created, in seconds since the Unix epoch.
    #[must_use]
    pub fn created(&self) -> Option<f64> {
        self.created
    }
}

/// An owned series value, as custom [`Collector`](crate::Collector)s give it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue(pub(crate) OwnedValue);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedValue {
    Counter(Number, Option<Box<Exemplar>>),
    Gauge(Number),
    Histogram {
        bounds: Vec<f64>,
        cumulative: Vec<u64>,
        /// Empty, or one per bucket (`+Inf` last).
        exemplars: Vec<Option<Arc<Exemplar>>>,
        sum: f64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
    Info,
}

impl MetricValue {
    /// A counter total.
    #[must_use]
    pub fn counter(value: impl Into<Number>) -> Self {
        Self(OwnedValue::Counter(value.into(), None))
    }

    /// A gauge value.
    #[must_use]
    pub fn gauge(value: impl Into<Number>) -> Self {
        Self(OwnedValue::Gauge(value.into()))
    }

    /// A histogram from `(upper bound, cumulative count)` pairs for the finite buckets, the
    /// total count (the `+Inf` bucket) and the sum. The shape is checked at scrape time: a
    /// family holding a malformed histogram is left out and counted as a collector error.
    #[must_use]
    pub fn histogram(buckets: impl IntoIterator<Item = (f64, u64)>, count: u64, sum: f64) -> Self {
        let (bounds, mut cumulative): (Vec<f64>, Vec<u64>) = buckets.into_iter().unzip();
        cumulative.push(count);
        Self(OwnedValue::Histogram {
            bounds,
            cumulative,
            exemplars: Vec::new(),
            sum,
        })
    }

    /// The value with exemplars, shown in the OpenMetrics format: for a counter, the first of
    /// `exemplars`; for a histogram, one per bucket in order (`+Inf` last), `None` for a
    /// bucket without one, and extra ones left out. Other kinds have no exemplars and are
    /// returned as they are.
    #[must_use]
    pub fn with_exemplars(mut self, exemplars: impl IntoIterator<Item = Option<Exemplar>>) -> Self {
        match &mut self.0 {
            OwnedValue::Counter(_, exemplar) => {
                *exemplar = exemplars.into_iter().next().flatten().map(Box::new);
            }
            OwnedValue::Histogram {
                cumulative,
                exemplars: kept,
                ..
            } => {
                *kept = exemplars
                    .into_iter()
                    .take(cumulative.len())
                    .map(|e| e.map(Arc::new))
                    .collect();
            }
            _ => {}
        }
        self
    }

    /// A summary from `(quantile, value)` pairs, the sum and the count.
    #[must_use]
    pub fn summary(quantiles: impl IntoIterator<Item = (f64, f64)>, sum: f64, count: u64) -> Self {
        Self(OwnedValue::Summary {
            quantiles: quantiles.into_iter().collect(),
            sum,
            count,
        })
    }

    /// An info series (value 1).
    #[must_use]
    pub fn info() -> Self {
        Self(OwnedValue::Info)
    }

    /// Borrows the value in the form the encoders read.
    #[must_use]
    pub fn as_ref(&self) -> ValueRef<'_> {
        match &self.0 {
            OwnedValue::Counter(n, exemplar) => ValueRef::Counter(CounterRef {
                value: *n,
                created: None,
                exemplar: exemplar.as_deref(),
            }),
            OwnedValue::Gauge(n) => ValueRef::Gauge(*n),
            OwnedValue::Histogram {
                bounds,
                cumulative,
                exemplars,
                sum,
            } => ValueRef::Histogram(HistogramRef {
                bounds,
                rendered_bounds: None,
                cumulative,
                sum: *sum,
                created: None,
                exemplars,
                extremes: None,
            }),
            OwnedValue::Summary {
                quantiles,
                sum,
                count,
            } => ValueRef::Summary(SummaryRef {
                quantiles,
                sum: *sum,
                count: *count,
                created: None,
            }),
            OwnedValue::Info => ValueRef::Info,
        }
    }

    /// The type of metric this value belongs to.
    pub(crate) fn kind(&self) -> MetricKind {
        match self.0 {
            OwnedValue::Counter(..) => MetricKind::Counter,
            OwnedValue::Gauge(_) => MetricKind::Gauge,
            OwnedValue::Histogram { .. } => MetricKind::Histogram,
            OwnedValue::Summary { .. } => MetricKind::Summary,
            OwnedValue::Info => MetricKind::Info,
        }
    }

    /// Checks what the exposition formats require of the value's shape.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.0 {
            OwnedValue::Counter(n, _) => {
                let v = n.as_f64();
                if v.is_nan() || v < 0.0 {
                    return Err(format!("counter value {v} is negative or NaN"));
                }
            }
            OwnedValue::Histogram {
                bounds, cumulative, ..
            } => {
                if let Err(e) = crate::metric::check_bounds(bounds) {
                    return Err(e.to_string());
                }
                if cumulative.windows(2).any(|w| w[0] > w[1]) {
                    return Err("cumulative bucket counts decrease".to_owned());
                }
            }
            OwnedValue::Summary { quantiles, .. } => {
                if let Some((q, _)) = quantiles.iter().find(|(q, _)| !(0.0..=1.0).contains(q)) {
                    return Err(format!("quantile {q} is outside [0, 1]"));
                }
            }
            OwnedValue::Gauge(_) | OwnedValue::Info => {}
        }
        Ok(())
    }
}

macro_rules! number_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for Number {
            fn from(v: $t) -> Self {
                Self::$variant(<$as>::from(v))
            }
        })*
    };
}

number_from!(
    u8 => U64 as u64, u16 => U64 as u64, u32 => U64 as u64, u64 => U64 as u64,
    i8 => I64 as i64, i16 => I64 as i64, i32 => I64 as i64, i64 => I64 as i64,
    f32 => F64 as f64, f64 => F64 as f64,
);

impl From<usize> for Number {
    fn from(v: usize) -> Self {
        Self::U64(u64::try_from(v).unwrap_or(u64::MAX))
    }
}
