//! A JSON export of the whole registry, for tools that do not read the Prometheus formats.
//!
//! # Shape
//!
//! ```json
//! {"metrics": [
//!   {"name": "http_requests", "type": "counter", "help": "...", "unit": null,
//!    "samples": [{"labels": {"method": "GET"}, "value": 3, "created": 1700000000.5}]},
//!   {"name": "latency_seconds", "type": "histogram", "help": "...", "unit": "seconds",
//!    "samples": [{"labels": {}, "count": 3, "sum": 0.75, "created": 1700000000.5,
//!                 "buckets": [{"le": 0.1, "count": 1}, {"le": "+Inf", "count": 3}]}]},
//!   {"name": "sizes", "type": "summary", "help": "...", "unit": null,
//!    "samples": [{"labels": {}, "count": 2, "sum": 7.0, "created": 1700000000.5,
//!                 "quantiles": [{"quantile": 0.5, "value": 3.0}]}]}
//! ]}
//! ```
//!
//! `name` is the family name (a counter's samples are `<name>_total` in the text formats, an
//! info's `<name>_info`); `type` is one of `counter`, `gauge`, `histogram`, `summary`, `info`
//! and `unknown`. Bucket counts are cumulative. `created` is in seconds since the Unix epoch and
//! is left out where unknown. Numbers JSON cannot hold are strings: `"NaN"`, `"+Inf"`, `"-Inf"`.
//! Constant labels are in each sample's `labels`.
//!
//! ```
//! use vitals_core::{encoding::json, Registry};
//!
//! let registry = Registry::new();
//! registry.gauge("queue_depth", "Jobs waiting.").register()?.set(3);
//! assert_eq!(
//!     json::encode(&registry),
//!     r#"{"metrics":[{"name":"queue_depth","type":"gauge","help":"Jobs waiting.","unit":null,"samples":[{"labels":{},"value":3}]}]}"#
//! );
//! # Ok::<(), vitals_core::Error>(())
//! ```

use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::metric::{Number, ValueRef};
use crate::registry::Registry;

/// The `Content-Type` of a response carrying this format.
pub const CONTENT_TYPE: &str = "application/json";

/// Encodes the whole registry as one JSON document.
#[must_use]
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    encode_into(registry, &mut out);
    out
}

/// Encodes the whole registry, appending to `out`.
pub fn encode_into(registry: &Registry, out: &mut String) {
    out.push_str("{\"metrics\":[");
    let mut encoder = JsonEncoder {
        out,
        families: 0,
        samples: 0,
    };
    registry.visit(&mut encoder);
    if encoder.families > 0 {
        encoder.out.push_str("]}");
    }
    encoder.out.push_str("]}");
}

struct JsonEncoder<'a> {
    out: &'a mut String,
    families: usize,
    samples: usize,
}

impl Sink for JsonEncoder<'_> {
    fn family(&mut self, family: &FamilyRef<'_>) {
        let out = &mut *self.out;
        if self.families > 0 {
            // Close the previous family's samples and object.
            out.push_str("]},");
        }
        self.families += 1;
        self.samples = 0;
        out.push_str("{\"name\":");
        write_string(out, family.name);
        out.push_str(",\"type\":");
        write_string(out, family.kind.openmetrics_name());
        out.push_str(",\"help\":");
        write_string(out, family.help);
        out.push_str(",\"unit\":");
        match family.unit {
            Some(unit) => write_string(out, unit),
            None => out.push_str("null"),
        }
        out.push_str(",\"samples\":[");
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let out = &mut *self.out;
        if self.samples > 0 {
            out.push(',');
        }
        self.samples += 1;
        out.push_str("{\"labels\":{");
        let mut first = true;
        labels.for_each(|name, value| {
            if !first {
                out.push(',');
            }
            first = false;
            write_string(out, name);
            out.push(':');
            write_string(out, value);
        });
        out.push('}');
        let created = match value {
            ValueRef::Counter(c) => {
                out.push_str(",\"value\":");
                write_number(out, c.value());
                c.created()
            }
            ValueRef::Gauge(n) => {
                out.push_str(",\"value\":");
                write_number(out, n);
                None
            }
            ValueRef::Info => {
                out.push_str(",\"value\":1");
                None
            }
            ValueRef::Histogram(h) => {
                out.push_str(",\"count\":");
                write_number(out, Number::U64(h.count()));
                out.push_str(",\"sum\":");
                write_number(out, Number::F64(h.sum()));
                out.push_str(",\"buckets\":[");
                for (i, &count) in h.cumulative_counts().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"le\":");
                    write_number(
                        out,
                        Number::F64(h.bounds().get(i).copied().unwrap_or(f64::INFINITY)),
                    );
                    out.push_str(",\"count\":");
                    write_number(out, Number::U64(count));
                    out.push('}');
                }
                out.push(']');
                h.created()
            }
            ValueRef::Summary(s) => {
                out.push_str(",\"count\":");
                write_number(out, Number::U64(s.count()));
                out.push_str(",\"sum\":");
                write_number(out, Number::F64(s.sum()));
                out.push_str(",\"quantiles\":[");
                for (i, &(q, v)) in s.quantiles().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"quantile\":");
                    write_number(out, Number::F64(q));
                    out.push_str(",\"value\":");
                    write_number(out, Number::F64(v));
                    out.push('}');
                }
                out.push(']');
                s.created()
            }
        };
        if let Some(created) = created {
            out.push_str(",\"created\":");
            write_number(out, Number::F64(created));
        }
        out.push('}');
    }
}

/// A JSON number, or a string for the values JSON has no number for.
fn write_number(out: &mut String, n: Number) {
    match n {
        Number::F64(v) if !v.is_finite() => {
            out.push('"');
            super::write_f64(out, v);
            out.push('"');
        }
        n => super::write_number(out, n),
    }
}

/// A JSON string with `"`, `\` and control characters escaped.
fn write_string(out: &mut String, s: &str) {
    crate::util::fmt::json_string(out, s, false);
}
