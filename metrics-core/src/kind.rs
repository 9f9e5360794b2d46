//! [`MetricKind`]: the type of a metric family, which names, labels and encoders depend on.

/// The type of a metric family, as the exposition formats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// A value that only goes up (and resets when the process restarts).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into cumulative buckets, with their sum and count.
    Histogram,
    /// Client-side quantiles over a sliding window, with the sum and count of all observations.
    Summary,
    /// A constant series whose labels carry information, such as `build_info`.
    Info,
    /// A value of unknown type, for custom collectors that cannot say more.
    Unknown,
}

impl MetricKind {
    /// The type's name in the OpenMetrics `# TYPE` line.
    #[must_use]
    pub fn openmetrics_name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::Unknown => "unknown",
        }
    }

    /// The type's name in the Prometheus text format's `# TYPE` line.
    #[must_use]
    pub fn prometheus_name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            // The 0.0.4 text format has no info type: an info metric is a gauge of value 1.
            Self::Gauge | Self::Info => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Unknown => "untyped",
        }
    }

    /// The suffix that this type adds to the family name for its main sample, if any.
    pub(crate) fn name_suffix(self) -> &'static str {
        match self {
            Self::Counter => "_total",
            Self::Info => "_info",
            _ => "",
        }
    }
}
