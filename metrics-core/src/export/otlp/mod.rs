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

mod env;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::Method;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::encoding::otlp::encode_request;
use crate::export::client::HttpTarget;
pub use crate::export::client::{PushError, Retry};
use crate::{Counter, Registry};

/// The shortest time between exports.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

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
///     .start()?;
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
    /// An exporter of `registry` to the collector at `endpoint` (`http[s]://host:port`, with
    /// an optional base path and query); metrics go to `/v1/metrics` below it, as OTLP/HTTP
    /// specifies. [`from_env`](Self::from_env) reads the standard `OTEL_*` variables instead.
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] when the endpoint would not give a correct request (user
    /// info, a fragment, a bad port, spaces); [`PushError::Tls`] for `https://` without the
    /// `tls` feature.
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

    crate::export::client::target_options!();

    /// Sets the time between exports, at least 10 milliseconds. Defaults to 60 seconds, as in
    /// OpenTelemetry's SDKs.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// The request body of one export of the registry as it is now.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_request(&self.registry, &self.resource)
    }

    /// Exports once, now, retrying as [`retry`](Self::retry) says.
    ///
    /// # Errors
    ///
    /// Any [`PushError`]; a collector's refusal is [`PushError::Rejected`] with its answer,
    /// and an answer whose `partial_success` rejected points is
    /// [`PushError::PartiallyRejected`].
    pub async fn export(&self) -> Result<(), PushError> {
        let answer = self
            .target
            .send(Method::POST, &self.path, CONTENT_TYPE, self.encode())
            .await?;
        match partial_success(&answer) {
            Some((rejected_points, message)) if rejected_points > 0 || !message.is_empty() => {
                Err(PushError::PartiallyRejected {
                    rejected_points,
                    message,
                })
            }
            _ => Ok(()),
        }
    }

    /// Exports every interval in a task on the current tokio runtime, until
    /// [`RunningOtlpExporter::shutdown`].
    ///
    /// # Errors
    ///
    /// [`PushError::NoRuntime`] when called outside a tokio runtime.
    pub fn start(self) -> Result<RunningOtlpExporter, PushError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PushError::NoRuntime)?;
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
            runtime.spawn(async move {
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
        Ok(RunningOtlpExporter {
            stop: Some(stop),
            task: Some(task),
            last_error,
        })
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
    /// The final export's error, or [`PushError::ExportTaskFailed`] when the export task
    /// panicked or its runtime shut down before the flush.
    pub async fn shutdown(mut self) -> Result<(), PushError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Err(PushError::ExportTaskFailed)),
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

/// The `partial_success` of an `ExportMetricsServiceResponse` (field 1: `rejected_data_points`
/// = 1, `error_message` = 2), if the answer is one and carries it. An empty or non-protobuf
/// answer (a JSON `{}`, a proxy's text) carries none.
fn partial_success(answer: &[u8]) -> Option<(i64, String)> {
    let mut response = ProtoReader(answer);
    while let Some((field, value)) = response.field()? {
        if let (1, ProtoValue::Bytes(inner)) = (field, value) {
            let (mut rejected, mut message) = (0, String::new());
            let mut partial = ProtoReader(inner);
            while let Some((field, value)) = partial.field()? {
                match (field, value) {
                    #[allow(clippy::cast_possible_wrap)] // int64 is sent as its two's complement
                    (1, ProtoValue::Varint(n)) => rejected = n as i64,
                    (2, ProtoValue::Bytes(text)) => {
                        message = String::from_utf8_lossy(text).into_owned();
                    }
                    _ => {}
                }
            }
            return Some((rejected, message));
        }
    }
    None
}

/// Reads protobuf fields; `None` on anything malformed.
struct ProtoReader<'a>(&'a [u8]);

enum ProtoValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> ProtoReader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next field, `Some(None)` at the end, `None` when malformed.
    fn field(&mut self) -> Option<Option<(u64, ProtoValue<'a>)>> {
        if self.0.is_empty() {
            return Some(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => ProtoValue::Varint(self.varint()?),
            1 => self.skip(8)?,
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                if len > self.0.len() {
                    return None;
                }
                let (bytes, rest) = self.0.split_at(len);
                self.0 = rest;
                ProtoValue::Bytes(bytes)
            }
            5 => self.skip(4)?,
            _ => return None,
        };
        Some(Some((key >> 3, value)))
    }

    fn skip(&mut self, n: usize) -> Option<ProtoValue<'a>> {
        self.0 = self.0.get(n..)?;
        Some(ProtoValue::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_success_is_read_from_the_answer_and_garbage_is_not() {
        // partial_success { rejected_data_points: 3, error_message: "bad" }
        let answer = [0x0a, 0x07, 0x08, 0x03, 0x12, 0x03, b'b', b'a', b'd'];
        assert_eq!(partial_success(&answer), Some((3, "bad".to_owned())));
        assert_eq!(partial_success(&[]), None, "an empty answer: all accepted");
        assert_eq!(partial_success(b"{}"), None, "JSON is not protobuf");
        assert_eq!(partial_success(&[0x0a, 0x09, 0x08]), None, "truncated");
        assert_eq!(partial_success(&[0x0a, 0x00]), Some((0, String::new())));
    }

    /// An address on 127.0.0.1 where nothing listens: bound, then let go.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("its address");
        drop(listener);
        format!("http://{address}")
    }

    #[test]
    fn an_export_task_that_died_with_its_runtime_is_an_error_at_shutdown() {
        let registry = Registry::new();
        let exporter = OtlpExporter::new(&registry, &closed_port())
            .unwrap()
            .retry(Retry::never());
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let running = first.block_on(async { exporter.start() }).unwrap();
        // The runtime goes away, and its tasks with it: no final export can happen.
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = second.block_on(running.shutdown());
        assert!(
            matches!(result, Err(PushError::ExportTaskFailed)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_final_export_that_fails_is_the_error_of_shutdown() {
        let registry = Registry::new();
        let exporter = OtlpExporter::new(&registry, &closed_port())
            .unwrap()
            .interval(Duration::from_secs(3600))
            .timeout(Duration::from_secs(5))
            .retry(Retry::never());
        let running = exporter.start().expect("inside a runtime");
        let result = running.shutdown().await;
        assert!(matches!(result, Err(PushError::Connect(_))), "{result:?}");
    }

    #[test]
    fn starting_outside_a_tokio_runtime_is_an_error_not_a_panic() {
        let registry = Registry::new();
        let exporter = OtlpExporter::new(&registry, "http://127.0.0.1:4318").unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            exporter.start().map(drop)
        }));
        let result = result.expect("start() does not panic outside a runtime");
        assert!(matches!(result, Err(PushError::NoRuntime)), "{result:?}");
        assert!(PushError::NoRuntime.to_string().contains("tokio runtime"));
    }
}
