//! The OTLP protobuf encoding of a registry: an `ExportMetricsServiceRequest`, written field
//! by field the way the OTLP `.proto` files define it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::kind::MetricKind;
use crate::metric::{Exemplar, Number, ValueRef};
use crate::Registry;

/// An `ExportMetricsServiceRequest` with one resource and one scope.
pub(crate) fn encode_request(registry: &Registry, resource: &[(String, String)]) -> Vec<u8> {
    let mut encoder = OtlpEncoder {
        metrics: Vec::new(),
        current: None,
        now: unix_nanos(SystemTime::now()),
    };
    registry.visit_with_exemplars(&mut encoder);
    encoder.finish_metric();
    let mut scope_metrics = Proto::default();
    scope_metrics.message(1, |scope| {
        scope.string(1, "vitals");
        scope.string(2, env!("CARGO_PKG_VERSION"));
    });
    for metric in &encoder.metrics {
        scope_metrics.bytes(2, metric);
    }
    let mut resource_metrics = Proto::default();
    resource_metrics.message(1, |r| {
        for (key, value) in resource {
            r.message(1, |kv| key_value(kv, key, value));
        }
    });
    resource_metrics.bytes(2, &scope_metrics.0);
    let mut request = Proto::default();
    request.bytes(1, &resource_metrics.0);
    request.0
}

/// One metric in the making: its header and the data points so far.
struct MetricInProgress {
    header: Proto,
    kind: MetricKind,
    points: Proto,
}

struct OtlpEncoder {
    metrics: Vec<Vec<u8>>,
    current: Option<MetricInProgress>,
    now: u64,
}

impl OtlpEncoder {
    fn finish_metric(&mut self) {
        let Some(metric) = self.current.take() else {
            return;
        };
        let mut out = metric.header;
        let points = metric.points.0;
        match metric.kind {
            MetricKind::Counter => out.message(7, |sum| {
                sum.raw(&points);
                sum.varint_field(2, 2); // AGGREGATION_TEMPORALITY_CUMULATIVE
                sum.varint_field(3, 1); // is_monotonic
            }),
            MetricKind::Histogram => out.message(9, |histogram| {
                histogram.raw(&points);
                histogram.varint_field(2, 2);
            }),
            MetricKind::Summary => out.message(11, |summary| summary.raw(&points)),
            _ => out.message(5, |gauge| gauge.raw(&points)),
        }
        self.metrics.push(out.0);
    }
}

impl Sink for OtlpEncoder {
    fn family(&mut self, family: &FamilyRef<'_>) {
        self.finish_metric();
        let mut header = Proto::default();
        header.string(1, family.name);
        header.string(2, family.help);
        if let Some(unit) = family.unit {
            header.string(3, ucum(unit));
        }
        self.current = Some(MetricInProgress {
            header,
            kind: family.kind,
            points: Proto::default(),
        });
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let now = self.now;
        let Some(metric) = self.current.as_mut() else {
            return;
        };
        let attributes = |point: &mut Proto, field: u32| {
            labels.for_each(|key, value| point.message(field, |kv| key_value(kv, key, value)));
        };
        // Every data point is field 1 of its Sum, Gauge, Histogram or Summary.
        metric.points.message(1, |point| match value {
            ValueRef::Counter(c) => {
                attributes(point, 7);
                if let Some(created) = c.created() {
                    point.fixed64(2, seconds_to_nanos(created));
                }
                point.fixed64(3, now);
                number(point, c.value());
                if let Some(exemplar) = c.exemplar() {
                    point.message(5, |e| exemplar_message(e, exemplar));
                }
            }
            ValueRef::Gauge(n) => {
                attributes(point, 7);
                point.fixed64(3, now);
                number(point, n);
            }
            ValueRef::Info => {
                attributes(point, 7);
                point.fixed64(3, now);
                number(point, Number::U64(1));
            }
            ValueRef::Histogram(h) => {
                attributes(point, 9);
                if let Some(created) = h.created() {
                    point.fixed64(2, seconds_to_nanos(created));
                }
                point.fixed64(3, now);
                point.fixed64(4, h.count());
                if !h.sum().is_nan() {
                    point.double(5, h.sum());
                }
                // OTLP counts each bucket on its own, not cumulatively.
                let mut previous = 0;
                point.packed_fixed64(
                    6,
                    h.cumulative_counts().iter().map(|&c| {
                        let own = c.saturating_sub(previous);
                        previous = c;
                        own
                    }),
                );
                point.packed_double(7, h.bounds().iter().copied());
                for i in 0..h.cumulative_counts().len() {
                    if let Some(exemplar) = h.exemplar(i) {
                        point.message(8, |e| exemplar_message(e, exemplar));
                    }
                }
            }
            ValueRef::Summary(s) => {
                attributes(point, 7);
                if let Some(created) = s.created() {
                    point.fixed64(2, seconds_to_nanos(created));
                }
                point.fixed64(3, now);
                point.fixed64(4, s.count());
                point.double(5, s.sum());
                for &(q, v) in s.quantiles() {
                    point.message(6, |at| {
                        at.double(1, q);
                        at.double(2, v);
                    });
                }
            }
        });
    }
}

/// `as_int` (field 6) for integers that fit, `as_double` (field 4) otherwise.
fn number(point: &mut Proto, n: Number) {
    match n {
        Number::I64(v) => point.sfixed64(6, v),
        Number::U64(v) => match i64::try_from(v) {
            Ok(v) => point.sfixed64(6, v),
            Err(_) => point.double(4, n.as_f64()),
        },
        Number::F64(v) => point.double(4, v),
    }
}

/// An `Exemplar`: a `trace_id` label of 32 hex digits and a `span_id` of 16 (as the
/// adapters take them from `traceparent`) go into the exemplar's `trace_id` and `span_id`
/// fields, as OTLP defines them; every other label is a filtered attribute.
fn exemplar_message(out: &mut Proto, exemplar: &Exemplar) {
    for (key, value) in exemplar.labels() {
        let id = match key.as_str() {
            "trace_id" => hex_id::<16>(value).map(|id| (5, id.to_vec())),
            "span_id" => hex_id::<8>(value).map(|id| (4, id.to_vec())),
            _ => None,
        };
        match id {
            Some((field, bytes)) => out.bytes(field, &bytes),
            None => out.message(7, |kv| key_value(kv, key, value)),
        }
    }
    if let Some(timestamp) = exemplar.timestamp() {
        out.fixed64(2, seconds_to_nanos(timestamp));
    }
    out.double(3, exemplar.value());
}

/// `N` bytes from `2N` hex digits, unless they are something else or all zeros.
fn hex_id<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut id = [0u8; N];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = nibble(digits[2 * i])? << 4 | nibble(digits[2 * i + 1])?;
    }
    (id != [0; N]).then_some(id)
}

/// A `KeyValue` with a string `AnyValue`.
fn key_value(out: &mut Proto, key: &str, value: &str) {
    out.string(1, key);
    out.message(2, |any| any.string_always(1, value));
}

fn ucum(unit: &str) -> &str {
    match unit {
        "seconds" => "s",
        "milliseconds" => "ms",
        "bytes" => "By",
        "ratio" => "1",
        other => other,
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn seconds_to_nanos(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1e9) as u64
}

/// A protobuf message being written: fields in the wire format, nested messages length-
/// prefixed.
#[derive(Default)]
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            #[allow(clippy::cast_possible_truncation)]
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        #[allow(clippy::cast_possible_truncation)]
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    fn fixed64(&mut self, field: u32, v: u64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn sfixed64(&mut self, field: u32, v: i64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn double(&mut self, field: u32, v: f64) {
        self.fixed64(field, v.to_bits());
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A string field, left out when empty (proto3's default).
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A string field written even when empty: a `oneof` member must be present to be set.
    fn string_always(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u32, build: impl FnOnce(&mut Proto)) {
        let mut inner = Proto::default();
        build(&mut inner);
        self.bytes(field, &inner.0);
    }

    fn raw(&mut self, encoded_fields: &[u8]) {
        self.0.extend_from_slice(encoded_fields);
    }

    fn packed_fixed64(&mut self, field: u32, values: impl Iterator<Item = u64>) {
        let packed: Vec<u8> = values.flat_map(u64::to_le_bytes).collect();
        if !packed.is_empty() {
            self.bytes(field, &packed);
        }
    }

    fn packed_double(&mut self, field: u32, values: impl Iterator<Item = f64>) {
        self.packed_fixed64(field, values.map(f64::to_bits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        let mut p = Proto::default();
        p.varint(1);
        p.varint(300);
        p.varint(u64::MAX);
        assert_eq!(p.0[..3], [0x01, 0xAC, 0x02]);
        assert_eq!(p.0.len(), 3 + 10);
        let mut p = Proto::default();
        p.string(1, "hi");
        p.fixed64(3, 1);
        assert_eq!(p.0, [0x0A, 2, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
