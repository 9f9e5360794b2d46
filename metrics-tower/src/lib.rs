//! Golden-signal HTTP metrics for axum and any tower HTTP service, in one line.
//!
//! # Quick start
//!
//! ```
//! use axum::{routing::get, Router};
//! use vitals_tower::MetricsLayer;
//! # use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = vitals_core::Registry::new(); // or leave it out: the process-wide one
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(MetricsLayer::builder().registry(&registry).build().unwrap());
//!
//! # let request = http::Request::get("/users/42").body(axum::body::Body::empty()).unwrap();
//! # let response = app.clone().oneshot(request).await.unwrap();
//! # let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! // After `GET /users/42`, the route is the template, never the raw path:
//! let labels = [("method", "GET"), ("route", "/users/{id}"), ("status", "200")];
//! assert_eq!(registry.get_sample_value("http_requests_total", &labels), Some(1.0));
//! // And `GET /metrics` on the same app answers with the exposition.
//! # }
//! ```
//!
//! `.layer(MetricsLayer::new())` records into the process-wide registry with every default.
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
