//! The OpenMetrics 1.0 text format, with `# UNIT`, exemplars, `# EOF`, and on request
//! `_created` samples.
//!
//! ```
//! use vitals_core::{encoding::openmetrics, Registry};
//!
//! let registry = Registry::new();
//! let jobs = registry.counter("jobs", "Jobs run.").register()?;
//! jobs.inc_by_with_exemplar(1, &[("trace_id", "4bf92f3577b34da6")])?;
//!
//! let body = openmetrics::encode(&registry);
//! assert!(body.starts_with("# TYPE jobs counter\n# HELP jobs Jobs run.\njobs_total 1 # {trace_id=\"4bf92f3577b34da6\"} 1.0 "));
//! assert!(!body.contains("jobs_created"), "off by default");
//! assert!(body.ends_with("# EOF\n"));
//!
//! let options = openmetrics::EncodeOptions::default().created_samples(true);
//! assert!(openmetrics::encode_with(&registry, options).contains("\njobs_created "));
//! # Ok::<(), vitals_core::Error>(())
//! ```
//!
//! # `_created` samples
//!
//! Counters, histograms and summaries can carry a `_created` sample, the time their series
//! began. They are off by default, as in client_golang: Prometheus 2.x, which negotiates
//! OpenMetrics, stores each one as a series of its own, doubling the series of every counter
//! and histogram, and uses it for nothing. Turn them on with
//! [`EncodeOptions::created_samples`] for consumers that read them (the endpoint and exporter
//! builders have a `created_samples` option too).
//!
//! Where the format forbids what a series holds, the sample is left out rather than the
//! document made invalid. OpenMetrics allows a histogram's `_sum` only when it is not NaN,
//! not negative and no bucket bound is negative, and `_count` only together with `_sum`; a
//! summary's `_sum` only when it is neither NaN nor negative; summary quantile values only
//! when they are not negative. So observations below zero can hide those samples here. The
//! Prometheus text format and JSON show all of them.

use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::metric::{Exemplar, Number, ValueRef};
use crate::registry::Registry;

use super::{write_escaped_label_value, write_f64, write_number};

/// The `Content-Type` of a response carrying this format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the OpenMetrics encoder writes besides what the format requires.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeOptions {
    created_samples: bool,
}

impl EncodeOptions {
    /// Whether counters, histograms and summaries carry their `_created` sample. Defaults to
    /// off (see the [module docs](self)).
    #[must_use]
    pub fn created_samples(mut self, on: bool) -> Self {
        self.created_samples = on;
        self
    }
}

/// Encodes the whole registry, ending with `# EOF`, with the default [`EncodeOptions`].
#[must_use]
pub fn encode(registry: &Registry) -> String {
    encode_with(registry, EncodeOptions::default())
}

/// Encodes the whole registry, ending with `# EOF`.
#[must_use]
pub fn encode_with(registry: &Registry, options: EncodeOptions) -> String {
    let mut out = String::new();
    encode_into_with(registry, options, &mut out);
    out
}

/// Encodes the whole registry, appending to `out`, with the default [`EncodeOptions`].
pub fn encode_into(registry: &Registry, out: &mut String) {
    encode_into_with(registry, EncodeOptions::default(), out);
}

/// Encodes the whole registry, appending to `out`.
pub fn encode_into_with(registry: &Registry, options: EncodeOptions, out: &mut String) {
    let mut encoder = OpenMetricsEncoder {
        created: options.created_samples,
        out,
        name: String::new(),
        labels: String::new(),
        number: String::new(),
    };
    registry.visit_with_exemplars(&mut encoder);
    encoder.out.push_str("# EOF\n");
}

struct OpenMetricsEncoder<'a> {
    created: bool,
    out: &'a mut String,
    name: String,
    labels: String,
    number: String,
}

impl Sink for OpenMetricsEncoder<'_> {
    fn family(&mut self, family: &FamilyRef<'_>) {
        self.name.clear();
        self.name.push_str(family.name);
        let out = &mut *self.out;
        out.push_str("# TYPE ");
        out.push_str(family.name);
        out.push(' ');
        out.push_str(family.kind.openmetrics_name());
        out.push('\n');
        if let Some(unit) = family.unit {
            out.push_str("# UNIT ");
            out.push_str(family.name);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
        out.push_str("# HELP ");
        out.push_str(family.name);
        out.push(' ');
        // OpenMetrics escapes quotes in HELP too.
        write_escaped_label_value(out, family.help);
        out.push('\n');
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let rendered = match labels.rendered {
            Some(rendered) => rendered,
            None => {
                super::text::render_labels(labels, &mut self.labels);
                &self.labels
            }
        };
        let (out, name, number) = (&mut *self.out, &self.name, &mut self.number);
        let created = |c: Option<f64>| c.filter(|_| self.created);
        let sample = |out: &mut String, suffix: &str, extra: Option<(&str, &str)>, n: Number| {
            out.push_str(name);
            out.push_str(suffix);
            write_labels(out, rendered, extra);
            out.push(' ');
            write_number(out, n);
        };
        match value {
            ValueRef::Counter(c) => {
                sample(out, "_total", None, c.value());
                write_exemplar(out, c.exemplar());
                out.push('\n');
                if let Some(created) = created(c.created()) {
                    sample(out, "_created", None, Number::F64(created));
                    out.push('\n');
                }
            }
            ValueRef::Gauge(n) => {
                sample(out, "", None, n);
                out.push('\n');
            }
            ValueRef::Info => {
                sample(out, "_info", None, Number::U64(1));
                out.push('\n');
            }
            ValueRef::Histogram(h) => {
                for (i, &count) in h.cumulative_counts().iter().enumerate() {
                    let le = match (h.bounds().get(i), h.rendered_bounds) {
                        (None, _) => "+Inf",
                        (Some(_), Some(rendered)) => &rendered[i],
                        (Some(&bound), None) => {
                            number.clear();
                            write_f64(number, bound);
                            number.as_str()
                        }
                    };
                    sample(out, "_bucket", Some(("le", le)), Number::U64(count));
                    write_exemplar(out, h.exemplar(i));
                    out.push('\n');
                }
                let negative_bounds = h.bounds().first().is_some_and(|&b| b < 0.0);
                // `>=` is false for NaN too.
                if !negative_bounds && h.sum() >= 0.0 {
                    sample(out, "_count", None, Number::U64(h.count()));
                    out.push('\n');
                    sample(out, "_sum", None, Number::F64(h.sum()));
                    out.push('\n');
                }
                if let Some(created) = created(h.created()) {
                    sample(out, "_created", None, Number::F64(created));
                    out.push('\n');
                }
            }
            ValueRef::Summary(s) => {
                for &(q, v) in s.quantiles() {
                    if v < 0.0 {
                        continue;
                    }
                    number.clear();
                    write_f64(number, q);
                    sample(out, "", Some(("quantile", number)), Number::F64(v));
                    out.push('\n');
                }
                sample(out, "_count", None, Number::U64(s.count()));
                out.push('\n');
                if s.sum() >= 0.0 {
                    sample(out, "_sum", None, Number::F64(s.sum()));
                    out.push('\n');
                }
                if let Some(created) = created(s.created()) {
                    sample(out, "_created", None, Number::F64(created));
                    out.push('\n');
                }
            }
        }
    }
}

fn write_labels(out: &mut String, rendered: &str, extra: Option<(&str, &str)>) {
    if rendered.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    out.push_str(rendered);
    if let Some((label, value)) = extra {
        if !rendered.is_empty() {
            out.push(',');
        }
        out.push_str(label);
        out.push_str("=\"");
        out.push_str(value);
        out.push('"');
    }
    out.push('}');
}

/// ` # {labels} value timestamp` after a sample, when there is an exemplar.
fn write_exemplar(out: &mut String, exemplar: Option<&Exemplar>) {
    let Some(exemplar) = exemplar else {
        return;
    };
    out.push_str(" # {");
    for (i, (name, value)) in exemplar.labels().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        write_escaped_label_value(out, value);
        out.push('"');
    }
    out.push_str("} ");
    write_f64(out, exemplar.value());
    if let Some(timestamp) = exemplar.timestamp() {
        out.push(' ');
        write_f64(out, timestamp);
    }
}
