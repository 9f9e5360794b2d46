//! Golden-signal HTTP metrics for actix-web, in one line, with exactly the names, labels and
//! values of vitals-tower: both record through [`vitals_core::http`].
//!
//! # Quick start
//!
//! ```
//! use std::sync::LazyLock;
//!
//! use actix_web::{test, web, App, HttpResponse};
//! use vitals_actix::vitals_core::{Counter, Registry};
//! use vitals_actix::Metrics;
//!
//! // A metric of your own, in the registry the middleware serves: `Registry::global()`.
//! static ORDERS_PLACED: LazyLock<Counter> = LazyLock::new(|| {
//!     Registry::global()
//!         .counter("orders_placed", "Orders placed.")
//!         .register()
//!         .expect("registered once, as a counter")
//! });
//!
//! # #[actix_web::main]
//! # async fn main() {
//! let app = test::init_service(
//!     App::new()
//!         .wrap(Metrics::new()) // records every request, serves GET /metrics
//!         .route("/orders", web::post().to(|| async {
//!             ORDERS_PLACED.inc();
//!             HttpResponse::Created().body("placed")
//!         })),
//! )
//! .await;
//! test::call_service(&app, test::TestRequest::post().uri("/orders").to_request()).await;
//! let metrics = test::call_and_read_body(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
//! let metrics = String::from_utf8(metrics.to_vec()).unwrap();
//!
//! // `GET /metrics` shows both, and the route is the pattern:
//! assert!(metrics.contains("\norders_placed_total 1\n"));
//! assert!(metrics.contains(r#"http_requests_total{method="POST",route="/orders",status="201"} 1"#));
//! # }
//! ```
//!
//! `Metrics::new()` records into the process-wide registry,
//! [`Registry::global`](vitals_core::Registry::global), and serves it, with every default:
//! register your own metrics there (a `static` [`LazyLock`](std::sync::LazyLock) as above
//! registers each once, at first use) and they appear on the same `/metrics`. To keep them
//! apart from other libraries' metrics, give the middleware a registry of your own,
//! `Metrics::builder().registry(&registry).build()?`, and register yours in it. Build the
//! middleware inside `HttpServer::new`'s factory as usual: every worker records into the same
//! series (one set per process, not per worker).
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `gzip` | yes | gzipped `/metrics` answers when the scraper accepts gzip (Prometheus does) |
//! | `tracing` | no | logs once when [`Metrics::new`] cannot register the HTTP metrics |
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
//! As in vitals-tower (see [`vitals_core::http`]): rate, errors, latency until the response
//! body ends or is dropped, and in-flight requests, per method, route and status. The route
//! is actix's `match_pattern()` (scopes and nested resources give the full template, tail
//! patterns such as `{tail:.*}` included); requests no route matched share the unmatched
//! value. A client that goes away before the response is `499`, a panicking handler `500`, an
//! `Err` from the inner service the status of its `ResponseError`.
//!
//! The route is taken before routing, so that the in-flight gauge counts each request under
//! its route while the handler runs. There `match_pattern()` walks the app's resource map
//! with regexes, which would be the largest part of the middleware's cost, so each worker
//! avoids the walk for most requests:
//!
//! - it remembers every static route, and up to 512 recent paths seen at least twice (the
//!   answer depends on the path alone, but for the one limit below; bounded memory);
//! - a path not seen before, such as `/users/8127`, is matched against the dynamic patterns
//!   the walk found so far.
//!
//! A guess, or a walk, is checked against actix's own answer once actix has routed the
//! request (when that answer is nearly free), and the request is recorded under actix's
//! answer; only right answers are remembered, and a pattern guessed wrong once is not guessed
//! again on that worker. So a path rewritten by a middleware inside this one (such as
//! `NormalizePath` wrapped before `Metrics`), or sent elsewhere by a guard, is still recorded
//! under the route actix gave it. A wrong answer shows in the in-flight gauge, for that one
//! request, until its response starts; only a request that never gets one (its handler
//! panicked, or its client left first) is recorded under it. Paths are taken as actix routes
//! them, percent-decoded.
//!
//! One limit: remembered paths are not checked again. If guards send one path to different
//! patterns from request to request (two scopes with overlapping patterns told apart by a
//! header or host), its requests are recorded under the pattern it was remembered with.
//!
//! Each route pattern also keeps, per method, its series (the in-flight gauge, and the
//! counter and histogram of the statuses its requests end with), so that a request does not
//! look them up by their labels either.
//!
//! # The metrics endpoint
//!
//! `GET /metrics` (configurable, or off) is answered by the middleware itself, in the format
//! the client's `Accept` header asks for, without reaching your handlers and without being
//! counted unless [`MetricsBuilder::count_endpoint`] says so; [`MetricsBuilder::endpoint_access`]
//! decides who may read it.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

/// The core crate, re-exported: its registry, metric types and encoders are the ones this
/// crate records into, so one dependency is enough.
pub use vitals_core;

mod body;
mod builder;
mod middleware;
mod patterns;
mod response;

pub use body::MetricsBody;
pub use builder::{Metrics, MetricsBuilder};
pub use middleware::MetricsMiddleware;
pub use response::MetricsResponse;
