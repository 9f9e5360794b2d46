//! The one error type of vitals-core.

use std::fmt;

use crate::kind::MetricKind;

/// What went wrong when registering a metric, looking up a series or recording a value.
///
/// Every variant names the offending string or value, so that the message alone tells a user
/// what to fix. Nothing in vitals-core panics on bad input; it returns one of these.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A metric name (or a namespace prefix, or a unit) breaks the Prometheus naming rules.
    InvalidMetricName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A label name breaks the Prometheus naming rules, or is reserved for this metric type.
    InvalidLabelName {
        /// The label name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A name is already registered with a different schema (type, help, unit, label names,
    /// buckets or quantiles), or two metrics would expose the same sample name.
    Conflict {
        /// The exposed metric name.
        name: String,
        /// What differs.
        reason: String,
    },
    /// Histogram buckets are empty, not finite or not strictly increasing.
    InvalidBuckets {
        /// Which rule they break.
        reason: String,
    },
    /// A summary's quantiles, window or accuracy are out of range.
    InvalidSummary {
        /// Which rule they break.
        reason: String,
    },
    /// A value that the metric cannot take, such as a negative or NaN counter increment.
    InvalidValue {
        /// The value.
        value: f64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An exemplar's labels are invalid or longer than OpenMetrics allows. The observation it
    /// came with was still recorded.
    InvalidExemplar {
        /// What is wrong.
        reason: String,
    },
    /// A route pattern cannot be used.
    InvalidRoute {
        /// The pattern as given.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// The labels given in a lookup do not match the family's label names.
    LabelMismatch {
        /// The family's metric name.
        metric: String,
        /// What does not match.
        reason: String,
    },
    /// The windowed statistics cannot answer or be set up as asked: a window longer than the
    /// rings hold, invalid ring options, or windows that are not enabled.
    InvalidWindow {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn conflict(name: &str, reason: impl Into<String>) -> Self {
        Self::Conflict {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn reserved_label(name: &str, kind: MetricKind) -> Self {
        Self::InvalidLabelName {
            name: name.to_owned(),
            reason: match kind {
                MetricKind::Histogram => "`le` is reserved for histogram buckets",
                MetricKind::Summary => "`quantile` is reserved for summary quantiles",
                _ => "reserved",
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMetricName { name, reason } => {
                write!(f, "invalid metric name {name:?}: {reason}")
            }
            Self::InvalidLabelName { name, reason } => {
                write!(f, "invalid label name {name:?}: {reason}")
            }
            Self::Conflict { name, reason } => {
                write!(
                    f,
                    "metric {name:?} conflicts with a registered metric: {reason}"
                )
            }
            Self::InvalidBuckets { reason } => write!(f, "invalid histogram buckets: {reason}"),
            Self::InvalidSummary { reason } => write!(f, "invalid summary options: {reason}"),
            Self::InvalidValue { value, reason } => write!(f, "value {value} refused: {reason}"),
            Self::InvalidExemplar { reason } => {
                write!(
                    f,
                    "exemplar refused (the observation was recorded): {reason}"
                )
            }
            Self::InvalidRoute { pattern, reason } => {
                write!(f, "invalid route pattern {pattern:?}: {reason}")
            }
            Self::LabelMismatch { metric, reason } => {
                write!(f, "labels do not match metric {metric:?}: {reason}")
            }
            Self::InvalidWindow { reason } => write!(f, "windowed statistics: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
