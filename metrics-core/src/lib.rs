//! The core of vitals: a registry, metric types, bounded label families and the Prometheus
//! exposition, with a hot path of plain atomics.
//!
//! # Quick start
//!
//! ```
//! use vitals_core::{encoding::text, Registry};
//!
//! let registry = Registry::new();
//! let requests = registry
//!     .counter("http_requests", "HTTP requests served.")
//!     .label_names(["method", "status"])
//!     .register()?;
//! let latency = registry
//!     .histogram("http_request_duration", "Time to serve an HTTP request.")
//!     .unit("seconds")
//!     .register()?;
//!
//! // Look a series up once, keep the handle, record into it: one atomic add.
//! let ok = requests.with_labels(&[("method", "GET"), ("status", "200")])?;
//! ok.inc();
//! latency.observe(0.042);
//!
//! assert_eq!(registry.get_sample_value("http_requests_total", &[("method", "GET"), ("status", "200")]), Some(1.0));
//! print!("{}", text::encode(&registry));
//! # Ok::<(), vitals_core::Error>(())
//! ```
//!
//! # Feature flags
//!
//! (Items of features that are off are named in code, without links: the table reads the
//! same in every build of these docs.)
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `process` | yes | `ProcessCollector`: the standard `process_*` metrics on Linux |
//! | `macros` | yes | `#[instrumented]`: calls, errors, in-flight and latency of any function |
//! | `http` | no | `#[instrumented]` counts `http` responses with a 5xx status as errors (axum's types) |
//! | `actix-web` | no | `#[instrumented]` counts actix-web responses with a 5xx status as errors |
//! | `otlp` | no | `otlp::OtlpExporter`: OTLP/HTTP protobuf export to an OpenTelemetry collector, periodic with a final flush, retries, gzip, `from_env()` |
//! | `push` | no | `push::Pushgateway`: push, push-add and delete for batch jobs, with retries and gzip |
//! | `tls` | no | `https://` endpoints for `push` and `otlp`: rustls (`ring`) and Mozilla's roots, plus any you add; no OpenSSL |
//! | `exporter` | no | `exporter::Exporter`: a standalone `/metrics` server (tokio + hyper), with format negotiation, gzip and auth |
//! | `gzip` | no | gzipped endpoint answers ([`http::EndpointResponse::into_wire`]) when the scraper accepts gzip; on in the adapters by default |
//! | `multiprocess` | no | `multiprocess` (Unix): metrics kept in per-process files shared by the processes of a service (and prometheus_client's), merged at every scrape |
//! | `metrics-facade` | no | `facade::FacadeRecorder`: `metrics::counter!`, `gauge!` and `histogram!` recorded into a registry |
//! | `opentelemetry` | no | exemplars from the current OpenTelemetry span (`http::TraceContext::current`), for the HTTP recorder and `#[instrumented]` |
//! | `sqlx` | no | `PoolCollector::add_sqlx`: an sqlx 0.9 pool's connections |
//! | `tokio-runtime` | no | `TokioCollector`: a tokio runtime's workers, tasks and queues (more with `--cfg tokio_unstable`) |
//! | `tracing` | no | logs once when an adapter's infallible `new()` cannot register the HTTP metrics |
//!
//! # Metric types
//!
//! | type | records | exposed as |
//! |---|---|---|
//! | [`Counter`], [`FloatCounter`] | totals that only go up | `<name>_total` |
//! | [`Gauge`], [`FloatGauge`] | values that go up and down; [`Gauge::track`] for in-flight counts | `<name>` |
//! | [`Histogram`] | observations in [`Buckets`]; [`Histogram::start_timer`] for durations | `<name>_bucket`, `_sum`, `_count` |
//! | [`Summary`] | quantiles over a sliding window, with a stated error bound | `<name>{quantile=..}`, `_sum`, `_count` |
//! | [`Info`] | a constant series whose labels are facts | `<name>_info` |
//!
//! Every type is a cheap handle (an `Arc`): clone it freely, keep it in a struct or a static.
//! Recording into a handle takes no lock and allocates nothing.
//!
//! # Labels, and why cardinality stays bounded
//!
//! `.label_names([...])` on a builder makes a [`Family`]: one series per label set, looked up by
//! name in any order ([`Family::with_labels`]), by position ([`Family::with_label_values`]) or as a
//! typed struct ([`LabelSet`], [`TypedFamily`]). A lookup takes no lock and writes no shared
//! memory; label sets from a small fixed set ([`DenseLabelSet`], [`DenseFamily`]) skip
//! hashing too and are found by index. Every family has a series cap
//! ([`DEFAULT_SERIES_CAP`] by default); past it, new label sets share one overflow series and
//! `vitals_series_overflow_total{metric=...}` counts how many were redirected, so a flood of
//! unexpected label values adds a constant number of series and loses no observation.
//!
//! # Registries
//!
//! [`Registry::global`] is the process-wide default, and the registry that the adapters'
//! one-line constructors (`MetricsLayer::new()`, `Metrics::new()`) record into and serve:
//! a metric registered there appears on their `/metrics`. Register application metrics once,
//! where they are first used, with a `static`:
//!
//! ```
//! use std::sync::LazyLock;
//! use vitals_core::{Counter, Registry};
//!
//! static ORDERS_PLACED: LazyLock<Counter> = LazyLock::new(|| {
//!     Registry::global()
//!         .counter("orders_placed", "Orders placed.")
//!         .register()
//!         .expect("registered once, as a counter")
//! });
//!
//! ORDERS_PLACED.inc();
//! assert_eq!(Registry::global().get_sample_value("orders_placed_total", &[]), Some(1.0));
//! ```
//!
//! (A new name cannot conflict, so the `expect` states an invariant; a second registration
//! under the same name and schema returns the same counter.) Create your own [`Registry`]
//! values in libraries and tests, and hand them to the adapters' builders
//! (`.registry(&registry)`) to serve them. Sub-registries ([`Registry::with_prefix`],
//! [`Registry::with_const_labels`], [`Registry::with_series_cap`]) are views of the same store.
//! Registration errors are typed ([`Error`]) and name the offending string; nothing panics on
//! bad input.
//!
//! # Custom collectors
//!
//! A [`Collector`] (or a closure) gives [`MetricFamily`] values at each scrape, for figures
//! that live elsewhere: a pool's size, a queue's depth, the operating system's view of the
//! process (`ProcessCollector`, feature `process`, registered in [`Registry::global`] from the start). A
//! failing collector is counted, not fatal. [`PoolCollector`] reads any connection pool
//! through a closure; `TokioCollector` (feature `tokio-runtime`) reads a tokio runtime's
//! metrics.
//!
//! # Functions
//!
//! `#[instrumented]` (feature `macros`) on a function, a method or an `impl` block records
//! `function_calls_total`, `function_calls_duration_seconds` and `function_calls_concurrent`
//! by function, module and result, through one static per function: no lookup per call.
//!
//! ```
//! #[vitals_core::instrumented]
//! async fn charge(cents: u64) -> Result<u64, std::io::Error> {
//!     Ok(cents)
//! }
//! ```
//!
//! # HTTP services
//!
//! [`http::HttpMetrics`] is the golden-signal recorder that vitals-tower and vitals-actix
//! share: method normalisation, route and status labels, and a guard that records each request
//! exactly once, however it ends. [`route::RouteTemplater`] turns raw paths into route
//! templates for services whose router does not name routes.
//!
//! # Reading values
//!
//! [`Registry::get_sample_value`] reads one sample without encoding or parsing text, for
//! tests; [`encoding::text`] writes the Prometheus text format 0.0.4.
//!
//! # The last minutes, in process
//!
//! [`window`]: what happened in the last N seconds (count, sum, average, rate, min, max,
//! percentiles, and the golden signals per route and function), from periodic snapshots that
//! cost the recording path nothing. [`http::live`] draws them in a browser at
//! `/metrics/live`; [`grafana`] generates the Grafana dashboards for the same metrics.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod collector;
pub mod encoding;
mod error;
mod export;
#[cfg(feature = "metrics-facade")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics-facade")))]
pub mod facade;
mod family;
pub mod http;
mod instrumented;
mod kind;
mod metric;
#[cfg(feature = "multiprocess")]
#[cfg_attr(docsrs, doc(cfg(feature = "multiprocess")))]
pub mod multiprocess;
// The mapped cells are std's atomics (loom's cannot live in a file), which the shared f64
// helpers take only outside loom models.
#[cfg(all(vitals_loom, feature = "multiprocess"))]
compile_error!("the loom models run without the `multiprocess` feature");
mod registry;
mod util;
mod validate;
pub mod window;

#[doc(inline)]
pub use export::grafana;
#[cfg(feature = "otlp")]
#[doc(inline)]
pub use export::otlp;
#[cfg(feature = "push")]
#[doc(inline)]
pub use export::pushgateway as push;
#[cfg(feature = "exporter")]
#[doc(inline)]
pub use export::server as exporter;
#[doc(inline)]
pub use http::route;

#[cfg(feature = "process")]
pub use collector::ProcessCollector;
#[cfg(feature = "tokio-runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-runtime")))]
pub use collector::TokioCollector;
pub use collector::{CollectError, Collector, MetricFamily, PoolCollector, PoolStats};
pub use error::Error;
pub use family::{
    DenseFamily, DenseLabelSet, Family, LabelSet, LabelValue, TypedFamily, DEFAULT_SERIES_CAP,
    OVERFLOW_LABEL_VALUE,
};
pub use kind::MetricKind;
pub use metric::{
    Buckets, Counter, CounterRef, Exemplar, FloatCounter, FloatGauge, Gauge, GaugeGuard, Histogram,
    HistogramRef, HistogramTimer, Info, Metric, MetricValue, Number, Summary, SummaryConfig,
    SummaryRef, ValueRef, EXEMPLAR_MAX_CHARS, MIN_SUMMARY_ACCURACY,
};
pub use registry::{FamilyBuilder, InfoBuilder, MetricBuilder, Registry, TypedFamilyBuilder};

#[cfg(feature = "macros")]
#[doc = include_str!("instrumented.md")]
#[doc(inline)]
pub use vitals_macros::instrumented;

/// Derives [`LabelSet`] for a struct with named fields, each a [`LabelValue`]: the label
/// names are the field names, in order.
///
/// ```
/// use vitals_core::{LabelSet, LabelValue, Registry};
///
/// #[derive(LabelValue)]
/// enum Op {
///     Select,
///     #[label(value = "insert_or_update")]
///     Upsert,
/// }
///
/// #[derive(LabelSet)]
/// struct Query<'a> {
///     table: &'a str,
///     op: Op,
///     shard: u16,
///     cached: bool,
/// }
///
/// let registry = Registry::new();
/// let queries = registry
///     .counter("db_queries", "Queries run.")
///     .typed_labels::<Query<'static>>()
///     .register()?;
/// queries.get(&Query { table: "users", op: Op::Upsert, shard: 3, cached: false }).inc();
/// let labels = [("cached", "false"), ("op", "insert_or_update"), ("shard", "3"), ("table", "users")];
/// assert_eq!(registry.get_sample_value("db_queries_total", &labels), Some(1.0));
/// # let _ = Op::Select;
/// # Ok::<(), vitals_core::Error>(())
/// ```
///
/// A field may rename its label with `#[label(name = "...")]`. With a renamed dependency,
/// `#[label(crate = path)]` on the struct names the path of vitals-core. Tuple and unit
/// structs, enums, and fields that are floats are compile errors at the offending token;
/// other field types must implement [`LabelValue`].
#[cfg(feature = "macros")]
pub use vitals_macros::LabelSet;

/// Derives [`LabelValue`] for an enum without fields: each variant's label value is its name
/// as written, or the one given with `#[label(value = "...")]`. See [`LabelSet`](derive@LabelSet)
/// for an example.
#[cfg(feature = "macros")]
pub use vitals_macros::LabelValue;

/// What `#[instrumented]` expands to. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::instrumented::outcome;
    pub use crate::instrumented::{
        call_once, Call, Outcome, Site, SiteMeta, DEFAULT_BOUNDS, DEFAULT_BUCKETS,
    };
    pub use crate::Registry;
}
