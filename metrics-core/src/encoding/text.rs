//! The Prometheus text exposition format, version 0.0.4.
//!
//! ```
//! use vitals_core::{encoding::text, Registry};
//!
//! let registry = Registry::new();
//! let requests = registry.counter("requests", "Requests served.").label_names(["path"]).register()?;
//! requests.with_labels(&[("path", "/a \"quoted\" path")])?.inc();
//!
//! let body = text::encode(&registry);
//! let expected = [
//!     "# HELP requests_total Requests served.",
//!     "# TYPE requests_total counter",
//!     r#"requests_total{path="/a \"quoted\" path"} 1"#,
//! ];
//! assert_eq!(body, expected.join("\n") + "\n");
//! # Ok::<(), vitals_core::Error>(())
//! ```

use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::metric::{Number, ValueRef};
use crate::registry::Registry;

use super::{write_escaped_label_value, write_f64, write_number};

/// The `Content-Type` of a response carrying this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encodes the whole registry.
#[must_use]
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    encode_into(registry, &mut out);
    out
}

/// Encodes the whole registry, appending to `out` (reuse the buffer across scrapes to avoid
/// growing a new one each time).
pub fn encode_into(registry: &Registry, out: &mut String) {
    let mut encoder = TextEncoder {
        out,
        name: String::new(),
        labels: String::new(),
        number: String::new(),
        prefix: String::new(),
    };
    registry.visit(&mut encoder);
}

struct TextEncoder<'a> {
    out: &'a mut String,
    /// The current family's name.
    name: String,
    /// Labels rendered for a series that did not come rendered (custom collectors).
    labels: String,
    /// A bound or quantile rendered for a sample that did not come rendered.
    number: String,
    /// The start of the current histogram's bucket lines.
    prefix: String,
}

impl Sink for TextEncoder<'_> {
    fn family(&mut self, family: &FamilyRef<'_>) {
        self.name.clear();
        self.name.push_str(family.name);
        // Counters and infos carry their sample suffix in 0.0.4's HELP and TYPE lines, as the
        // Prometheus clients write them.
        let suffix = family.kind.name_suffix();
        let out = &mut *self.out;
        out.push_str("# HELP ");
        out.push_str(family.name);
        out.push_str(suffix);
        out.push(' ');
        write_escaped_help(out, family.help);
        out.push_str("\n# TYPE ");
        out.push_str(family.name);
        out.push_str(suffix);
        out.push(' ');
        out.push_str(family.kind.prometheus_name());
        out.push('\n');
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let rendered = match labels.rendered {
            Some(rendered) => rendered,
            None => {
                render_labels(labels, &mut self.labels);
                &self.labels
            }
        };
        let line = Line {
            name: &self.name,
            labels: rendered,
        };
        let out = &mut *self.out;
        match value {
            ValueRef::Counter(c) => line.write(out, "_total", None, c.value()),
            ValueRef::Gauge(n) => line.write(out, "", None, n),
            ValueRef::Info => line.write(out, "_info", None, Number::U64(1)),
            ValueRef::Histogram(h) => {
                // Every bucket line starts the same: build that once per series.
                let prefix = &mut self.prefix;
                prefix.clear();
                prefix.push_str(line.name);
                prefix.push_str("_bucket{");
                prefix.push_str(line.labels);
                if !line.labels.is_empty() {
                    prefix.push(',');
                }
                prefix.push_str("le=\"");
                for (i, &count) in h.cumulative_counts().iter().enumerate() {
                    let le = match (h.bounds().get(i), h.rendered_bounds) {
                        (None, _) => "+Inf",
                        (Some(_), Some(rendered)) => &rendered[i],
                        (Some(&bound), None) => {
                            self.number.clear();
                            write_f64(&mut self.number, bound);
                            &self.number
                        }
                    };
                    out.push_str(prefix);
                    out.push_str(le);
                    out.push_str("\"} ");
                    out.push_str(itoa::Buffer::new().format(count));
                    out.push('\n');
                }
                line.write(out, "_sum", None, Number::F64(h.sum()));
                line.write(out, "_count", None, Number::U64(h.count()));
            }
            ValueRef::Summary(s) => {
                for &(q, v) in s.quantiles() {
                    self.number.clear();
                    write_f64(&mut self.number, q);
                    line.write(out, "", Some(("quantile", &self.number)), Number::F64(v));
                }
                line.write(out, "_sum", None, Number::F64(s.sum()));
                line.write(out, "_count", None, Number::U64(s.count()));
            }
        }
    }
}

/// The parts every sample line of one series shares.
struct Line<'a> {
    name: &'a str,
    labels: &'a str,
}

impl Line<'_> {
    #[inline]
    fn write(&self, out: &mut String, suffix: &str, extra: Option<(&str, &str)>, n: Number) {
        out.push_str(self.name);
        out.push_str(suffix);
        if !self.labels.is_empty() || extra.is_some() {
            out.push('{');
            out.push_str(self.labels);
            if let Some((label, value)) = extra {
                if !self.labels.is_empty() {
                    out.push(',');
                }
                out.push_str(label);
                out.push_str("=\"");
                out.push_str(value);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_number(out, n);
        out.push('\n');
    }
}

/// Renders `name="value",...` for a series that did not come rendered.
pub(super) fn render_labels(labels: &LabelsRef<'_>, out: &mut String) {
    out.clear();
    labels.for_each(|name, value| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        write_escaped_label_value(out, value);
        out.push('"');
    });
}

/// Help text escapes `\` and newlines (quotes stay as they are).
fn write_escaped_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Buckets, MetricFamily, MetricKind, MetricValue};

    #[test]
    fn every_metric_type_is_written_as_the_format_specifies() {
        let r = Registry::new();
        r.counter("c", "Counter.").register().unwrap().inc_by(3);
        r.float_gauge("g", "Gauge.")
            .register()
            .unwrap()
            .set(f64::NEG_INFINITY);
        let h = r
            .histogram("h_seconds", "Histogram.")
            .buckets(Buckets::new([0.5, 1.0]).unwrap())
            .label_names(["route"])
            .register()
            .unwrap();
        h.with_label_values(&["/"]).unwrap().observe(0.75);
        let s = r
            .summary("s", "Summary.")
            .quantiles(&[0.5])
            .register()
            .unwrap();
        s.observe(2.0);
        r.info("build", "Build.")
            .register(&[("version", "1.0")])
            .unwrap();
        r.register_collector("x", || {
            Ok(vec![MetricFamily::new(
                "u",
                "Untyped.",
                MetricKind::Unknown,
            )
            .with_sample(&[], MetricValue::gauge(f64::NAN))])
        })
        .unwrap();
        let text = encode(&r);
        let expected = "\
# HELP c_total Counter.
# TYPE c_total counter
c_total 3
# HELP g Gauge.
# TYPE g gauge
g -Inf
# HELP h_seconds Histogram.
# TYPE h_seconds histogram
h_seconds_bucket{route=\"/\",le=\"0.5\"} 0
h_seconds_bucket{route=\"/\",le=\"1.0\"} 1
h_seconds_bucket{route=\"/\",le=\"+Inf\"} 1
h_seconds_sum{route=\"/\"} 0.75
h_seconds_count{route=\"/\"} 1
# HELP s Summary.
# TYPE s summary
s{quantile=\"0.5\"} ";
        assert!(text.starts_with(expected), "{text}");
        let rest = &text[expected.len()..];
        let (median, rest) = rest.split_once('\n').unwrap();
        let median: f64 = median.parse().unwrap();
        assert!((median - 2.0).abs() <= 0.02, "{median}");
        assert_eq!(
            rest,
            "\
s_sum 2.0
s_count 1
# HELP build_info Build.
# TYPE build_info gauge
build_info{version=\"1.0\"} 1
# HELP u Untyped.
# TYPE u untyped
u NaN
"
        );
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let r = Registry::new();
        let f = r
            .gauge("g", "Back\\slash, \"quotes\" and a\nnewline.")
            .label_names(["v"])
            .register()
            .unwrap();
        f.with_label_values(&["a\\b\"c\nd é 🚀"]).unwrap().set(1);
        assert_eq!(
            encode(&r),
            "# HELP g Back\\\\slash, \"quotes\" and a\\nnewline.\n# TYPE g gauge\n\
             g{v=\"a\\\\b\\\"c\\nd é 🚀\"} 1\n"
        );
    }
}
