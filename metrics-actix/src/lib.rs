//! Golden-signal HTTP metrics for actix-web, in one line, with exactly the names, labels and
//! values of vitals-tower: both record through [`vitals_core::http`].
//!
//! # Quick start
//!
//! ```
//! use actix_web::{test, web, App, HttpResponse};
//! use vitals_actix::Metrics;
//!
//! # #[actix_web::main]
//! # async fn main() {
//! let registry = vitals_core::Registry::new(); // or leave it out: the process-wide one
//! let app = test::init_service(
//!     App::new()
//!         .wrap(Metrics::builder().registry(&registry).build().unwrap())
//!         .route("/users/{id}", web::get().to(|| async { HttpResponse::Ok().body("a user") })),
//! )
//! .await;
//! let response = test::call_service(&app, test::TestRequest::get().uri("/users/42").to_request()).await;
//! let _ = test::read_body(response).await;
//!
//! let labels = [("method", "GET"), ("route", "/users/{id}"), ("status", "200")];
//! assert_eq!(registry.get_sample_value("http_requests_total", &labels), Some(1.0));
//! # }
//! ```
//!
//! `.wrap(Metrics::new())` records into the process-wide registry with every default; build
//! it inside `HttpServer::new`'s factory as usual: every worker records into the same series
//! (one set per process, not per worker).
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
