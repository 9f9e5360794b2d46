//! OTLP/HTTP metrics export (protobuf), behind the `otlp` feature: periodic pushes to an
//! OpenTelemetry collector and a final flush on shutdown.
//!
//! # How registry metrics map to OTLP
//!
//! | vitals | OTLP |
//! |---|---|
//! | counter | `Sum`, monotonic, cumulative, starting at the series' creation |
//! | gauge | `Gauge` |
//! | histogram | `Histogram`, cumulative, explicit bounds, per-bucket counts, sum, exemplars |
//! | summary | `Summary`, with its quantiles |
//! | info | `Gauge` of value 1 whose attributes are the labels |
//!
//! Labels (constant ones included) become string attributes. The metric name is the family
//! name (a counter's without `_total`); the units `seconds`, `bytes` and `ratio` become the UCUM
//! `s`, `By` and `1`, others pass as they are. The resource carries `service.name` (by default
//! the name of the running executable; [`otlp_exporter!`](crate::otlp_exporter) uses the
//! calling crate's name) and any attributes you add.
//!
//! The wire format is written directly, without a protobuf library: the few messages involved
//! are small, and each field is written the way the OTLP `.proto` files define it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::Method;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::HttpTarget;
pub use crate::client::PushError;
use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::kind::MetricKind;
use crate::metric::Exemplar;
use crate::metric::{Number, ValueRef};
use crate::{Counter, Registry};

/// The `Content-Type` of an OTLP/HTTP protobuf request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// Builds an [`OtlpExporter`] whose `service.name` is the calling crate's package name.
///
/// ```
/// let registry = vitals_core::Registry::new();
/// let exporter = vitals_core::otlp_exporter!(&registry, "http://127.0.0.1:4318")?;
/// # Ok::<(), vitals_core::otlp::PushError>(())
/// ```
#[macro_export]
macro_rules! otlp_exporter {
    ($registry:expr, $endpoint:expr $(,)?) => {
        $crate::otlp::OtlpExporter::new($registry, $endpoint)
            .map(|exporter| exporter.service_name(::core::env!("CARGO_PKG_NAME")))
    };
}

/// Sends a registry to an OpenTelemetry collector over OTLP/HTTP with protobuf, every
/// `interval` and once more on shutdown.
///
/// A failed export is kept as [`RunningOtlpExporter::last_error`] and counted in the registry's
/// `vitals_otlp_export_failures_total`; the next export sends everything again (the data is
/// cumulative), so nothing is lost.
///
/// ```no_run
/// use std::time::Duration;
/// use vitals_core::{otlp::OtlpExporter, Registry};
///
/// # async fn run() -> Result<(), vitals_core::otlp::PushError> {
/// let registry = Registry::new();
/// let running = OtlpExporter::new(&registry, "http://127.0.0.1:4318")?
///     .service_name("billing-worker")
///     .resource_attribute("deployment.environment", "prod")
///     .interval(Duration::from_secs(30))
///     .start();
/// // ... work ...
/// running.shutdown().await?; // the final flush
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "nothing is exported until `start` or `export` is called"]
pub struct OtlpExporter {
    registry: Registry,
    target: HttpTarget,
    path: String,
    interval: Duration,
    resource: Vec<(String, String)>,
}

impl OtlpExporter {
    /// An exporter of `registry` to the collector at `endpoint` (`http://host:port`); metrics
    /// go to `/v1/metrics` below it, as OTLP/HTTP specifies.
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] when the endpoint is not `http://host[:port][/path]`.
    pub fn new(registry: &Registry, endpoint: &str) -> Result<Self, PushError> {
        let service = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown_service".to_owned());
        Ok(Self {
            registry: registry.clone(),
            target: HttpTarget::new(endpoint)?,
            path: "/v1/metrics".to_owned(),
            interval: Duration::from_secs(60),
            resource: vec![("service.name".to_owned(), service)],
        })
    }

    /// Sets `service.name`. Defaults to the running executable's name.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.resource[0].1 = name.into();
        self
    }

    /// Adds a resource attribute (`deployment.environment`, `service.version`, ...).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Adds a header to every request (an API key, a tenant). Defaults to none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.target.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `Authorization: Bearer <token>`.
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        self.target.bearer_token(token.as_ref());
        self
    }

    /// Sends HTTP basic authentication.
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        self.target.basic_auth(user.as_ref(), password.as_ref());
        self
    }

    /// Sets the time between exports. Defaults to 60 seconds, as in OpenTelemetry's SDKs.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Sets how long one export may take. Defaults to 10 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.target.timeout = timeout;
        self
    }

    /// The request body of one export of the registry as it is now.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_request(&self.registry, &self.resource)
    }

    /// Exports once, now.
    ///
    /// # Errors
    ///
    /// Any [`PushError`]; a collector's refusal is [`PushError::Rejected`] with its answer.
    pub async fn export(&self) -> Result<(), PushError> {
        self.target
            .send(Method::POST, &self.path, CONTENT_TYPE, self.encode())
            .await
            .map(drop)
    }

    /// Exports every interval in a task on the current tokio runtime, until
    /// [`RunningOtlpExporter::shutdown`].
    pub fn start(self) -> RunningOtlpExporter {
        let failures = self
            .registry
            .counter(
                "vitals_otlp_export_failures",
                "OTLP exports that failed; the next export sends everything again.",
            )
            .register()
            .ok();
        let last_error = Arc::new(Mutex::new(None));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let exporter = Arc::new(self);
        let task = {
            let (exporter, last_error) = (Arc::clone(&exporter), Arc::clone(&last_error));
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(exporter.interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await; // the first tick is immediate
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = &mut stopped => break,
                    }
                    record(&exporter.export().await, failures.as_ref(), &last_error);
                }
                let flush = exporter.export().await;
                record(&flush, failures.as_ref(), &last_error);
                flush
            })
        };
        RunningOtlpExporter {
            stop: Some(stop),
            task: Some(task),
            last_error,
        }
    }
}

fn record(
    result: &Result<(), PushError>,
    failures: Option<&Counter>,
    last: &Mutex<Option<String>>,
) {
    let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(()) => *last = None,
        Err(e) => {
            if let Some(failures) = failures {
                failures.inc();
            }
            *last = Some(e.to_string());
        }
    }
}

/// A running [`OtlpExporter`]. Dropping it stops the exports without a final flush;
/// [`shutdown`](Self::shutdown) flushes.
#[derive(Debug)]
pub struct RunningOtlpExporter {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), PushError>>>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl RunningOtlpExporter {
    /// The error of the latest export, if it failed.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the periodic exports and sends a final one.
    ///
    /// # Errors
    ///
    /// The final export's error.
    pub async fn shutdown(mut self) -> Result<(), PushError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningOtlpExporter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An `ExportMetricsServiceRequest` with one resource and one scope.
fn encode_request(registry: &Registry, resource: &[(String, String)]) -> Vec<u8> {
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

fn exemplar_message(out: &mut Proto, exemplar: &Exemplar) {
    for (key, value) in exemplar.labels() {
        out.message(7, |kv| key_value(kv, key, value));
    }
    if let Some(timestamp) = exemplar.timestamp() {
        out.fixed64(2, seconds_to_nanos(timestamp));
    }
    out.double(3, exemplar.value());
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
