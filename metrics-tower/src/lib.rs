//! Golden-signal HTTP metrics for axum and any tower HTTP service, in one line.
//!
//! # Quick start
//!
//! ```
//! use std::sync::LazyLock;
//!
//! use axum::{routing::post, Router};
//! use vitals_tower::vitals_core::{Counter, Registry};
//! use vitals_tower::MetricsLayer;
//! # use tower::ServiceExt as _;
//!
//! // A metric of your own, in the registry the layer serves: `Registry::global()`.
//! static ORDERS_PLACED: LazyLock<Counter> = LazyLock::new(|| {
//!     Registry::global()
//!         .counter("orders_placed", "Orders placed.")
//!         .register()
//!         .expect("registered once, as a counter")
//! });
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app: Router = Router::new()
//!     .route("/orders", post(|| async { ORDERS_PLACED.inc(); "placed" }))
//!     .layer(MetricsLayer::new()); // last: records every request, serves GET /metrics
//! # let call = |method: &str, uri: &str| {
//! #     let request = http::Request::builder().method(method).uri(uri).body(axum::body::Body::empty()).unwrap();
//! #     let app = app.clone();
//! #     async move {
//! #         let response = app.oneshot(request).await.unwrap();
//! #         let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! #         String::from_utf8(body.to_vec()).unwrap()
//! #     }
//! # };
//! # call("POST", "/orders").await;
//! # let metrics = call("GET", "/metrics").await;
//! // After `POST /orders`, `GET /metrics` shows both, and the route is the template:
//! assert!(metrics.contains("\norders_placed_total 1\n"));
//! assert!(metrics.contains(r#"http_requests_total{method="POST",route="/orders",status="200"} 1"#));
//! # }
//! ```
//!
//! `MetricsLayer::new()` records into the process-wide registry,
//! [`Registry::global`](vitals_core::Registry::global), and serves it, with every default: register your own
//! metrics there (a `static` [`LazyLock`](std::sync::LazyLock) as above registers each once,
//! at first use) and they appear on the same `/metrics`. To keep them apart from other
//! libraries' metrics, give the layer a registry of your own,
//! `MetricsLayer::builder().registry(&registry).build()?`, and register yours in it.
//!
//! **Add it last**, after every route, nested router and `.fallback(..)`: axum's
//! `Router::layer` wraps what the router holds when it is called. Routes added after it are
//! not recorded, and a fallback added after it takes the unmatched requests unrecorded,
//! `GET /metrics` included. For the same reason `Router::route_layer` records matched routes
//! only, and does not serve `/metrics`.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | route labels from axum's `MatchedPath` |
//! | `gzip` | yes | gzipped `/metrics` answers when the scraper accepts gzip (Prometheus does) |
//! | `tracing` | no | logs once when [`MetricsLayer::new`] cannot register the HTTP metrics |
//! | `macros` | no | `#[instrumented]`, re-exported from vitals-core (brings `syn`) |
//! | `process` | no | vitals-core's Linux process collector |
//! | `multiprocess` | no | vitals-core's multi-process mode (Unix): one registry shared by a pre-fork server's processes |
//! | `metrics-facade` | no | a recorder for `metrics::counter!` and friends (vitals-core's `facade`) |
//! | `sqlx` | no | vitals-core's `PoolCollector::add_sqlx`: an sqlx 0.9 pool's connections |
//! | `tokio-runtime` | no | vitals-core's `TokioCollector`: the runtime's workers, tasks and queues |
//! | `opentelemetry` | no | exemplars from the current OpenTelemetry span as well as from `traceparent` |
//!
//! # What is recorded
//!
//! For every request, with the names and labels of [`vitals_core::http`] (Prometheus names
//! by default, OpenTelemetry's with [`Naming::OpenTelemetry`](vitals_core::http::Naming)):
//! `http_requests_total{method,route,status}`, `http_request_duration_seconds{method,route,status}`
//! and `http_requests_in_flight{method,route}`, plus body sizes when asked.
//!
//! - **Route**: axum's `MatchedPath` (the full template, also under nested routers); a
//!   [`RouteTemplater`](vitals_core::route::RouteTemplater) for services without one; else the
//!   unmatched value, shared by every request no route matched (fallbacks, 404s, 405s). A raw
//!   path never becomes a label value.
//! - **Nested services** (`Router::nest_service`, such as tower-http's `ServeDir`): axum gives
//!   the requests below their prefix no `MatchedPath`, so they share the unmatched value (with
//!   their real status) unless a templater names them. Give it the service's pattern and no
//!   built-in rules, so that requests no route matched stay unmatched:
//!
//!   ```
//!   use vitals_core::route::RouteTemplater;
//!   use vitals_tower::MetricsLayer;
//!
//!   let templater = RouteTemplater::new()
//!       .pattern("/static/{*file}")? // `GET /static/css/site.css` is `/static/{*file}`
//!       .learned_templates(0); // patterns only
//!   let layer = MetricsLayer::builder().route_templater(templater).build()?;
//!   # Ok::<(), vitals_core::Error>(())
//!   ```
//! - **Method**: the standard methods as they are, anything else `_OTHER`.
//! - **Latency** runs until the response body ends or is dropped (the guard lives in the
//!   body); [`MetricsLayerBuilder::headers_only`] stops it at the headers instead.
//! - **Every request counts once**: a client that goes away before the response is `499`, a
//!   panicking handler `500` (or whatever a `CatchPanicLayer` inside answers), an error from
//!   the inner service `500`; the in-flight gauge always returns to zero. Upgraded connections
//!   (WebSocket) are counted but kept out of the latency histogram.
//!
//! **Put the metrics layer outside the layers that answer for the handler** (timeouts,
//! load shedding, concurrency limits, authentication): with axum, add it last. A layer outside
//! it that answers on its own, such as tower-http's `TimeoutLayer`, drops the metrics layer's
//! future, and a dropped future carries no status: the request is recorded as `499`, what a
//! client that went away looks like, although the client got the outer layer's 408 or 503.
//! Inside, the timeout's answer passes through the metrics layer and is recorded as it is.
//!
//! ```
//! use std::time::Duration;
//! use axum::{http::StatusCode, routing::get, Router};
//! use tower_http::timeout::TimeoutLayer;
//! use vitals_tower::MetricsLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(TimeoutLayer::with_status_code(
//!         StatusCode::REQUEST_TIMEOUT,
//!         Duration::from_secs(10),
//!     ))
//!     .layer(MetricsLayer::new()); // added last, so outermost: it records the 408s too
//! ```
//!
//! `Router::layer` wraps each route's handler in a service of its own, and each such service
//! keeps its route's series (through [`vitals_core::http::RouteHint`]): a request routed by
//! axum goes straight to them, with no labels hashed. Routes from the templater vary from
//! request to request and are looked up by their labels.
//!
//! # The metrics endpoint
//!
//! `GET /metrics` (configurable, or off) is answered by the layer itself, in the format the
//! client's `Accept` header asks for, without reaching your handlers and without being counted
//! unless [`MetricsLayerBuilder::count_endpoint`] says so.
//! [`MetricsLayerBuilder::endpoint_access`] decides who may read it.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

/// The core crate, re-exported: its registry, metric types and encoders are the ones this
/// crate records into, so one dependency is enough.
pub use vitals_core;

mod body;
mod future;
mod layer;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{EndpointAccess, EndpointRequest, MetricsLayer, MetricsLayerBuilder};
pub use service::Metrics;
