//! The HTTP golden-signal recorder that every adapter shares, so that vitals-tower and
//! vitals-actix record the same names, labels and values for the same traffic.
//!
//! An adapter calls [`HttpMetrics::start`] when a request arrives and keeps the returned
//! [`RequestGuard`] alive until the response body has ended (inside the body wrapper): it
//! tells the guard the route once routing knows it, the status when the response starts
//! ([`RequestGuard::headers_ready`]), and the bytes as they pass; [`RequestGuard::finish`]
//! records at the end of the body. A guard dropped early still records:
//!
//! | how the request ended | status label | latency recorded |
//! |---|---|---|
//! | body sent to the end | the response's | yes |
//! | client went away, or the future was dropped, before the response started | [`STATUS_CLIENT_CLOSED`] (499) | yes, until the drop |
//! | client went away during the body | the response's | yes, until the drop |
//! | the handler panicked (the guard drops while unwinding) | [`STATUS_PANICKED`] (500) | yes |
//! | connection upgraded (WebSocket) | the response's (101) | no: the connection's life is not a latency (with [`Naming::OpenTelemetry`], whose request count is the histogram's, it is not counted either) |
//!
//! An adapter also hands the guard the request's `traceparent` header
//! ([`RequestGuard::traceparent`]): with a valid one, the request's counter series and its
//! latency bucket keep its trace and span ids as their latest exemplar ([`TraceContext`]),
//! shown in the OpenMetrics format and put in the OTLP exemplars' id fields. Each series keeps
//! them in a lock-free slot per bucket, allocated with its first traced request. Exemplars are
//! samples: of the requests of one method and route, at most one per millisecond keeps its
//! trace, and the others neither parse the header nor allocate.
//!
//! Every request is counted exactly once, and the in-flight gauge returns to zero in every
//! case. A `405 Method Not Allowed` is counted under the unmatched route, with the requests no
//! route matched (404s and fallbacks): no route took it.
//!
//! The recorder's series are written by every worker thread for every request, so each keeps
//! one set of values per core (up to 8) plus one, on cache lines of its own, and a scrape adds
//! them up: two threads serving the same route do not wait on each other's writes, and a
//! thread that owns its set writes it without atomic read-modify-writes (a series takes 128
//! bytes per set with the default buckets; more buckets take more). They are exposed as
//! plain counters, gauges and histograms; their names belong to the recorder, so registering
//! one of them yourself on the same registry is a [`Conflict`](crate::Error::Conflict) error.
//!
//! ```
//! use vitals_core::http::HttpMetrics;
//! use vitals_core::Registry;
//!
//! let registry = Registry::new();
//! let metrics = HttpMetrics::builder(&registry).build()?;
//! let mut request = metrics.start("GET", Some("/users/{id}"));
//! request.response(200);
//! request.add_response_bytes(512);
//! request.finish();
//!
//! let labels = [("method", "GET"), ("route", "/users/{id}"), ("status", "200")];
//! assert_eq!(registry.get_sample_value("http_requests_total", &labels), Some(1.0));
//! assert_eq!(
//!     registry.get_sample_value("http_requests_in_flight", &[("method", "GET"), ("route", "/users/{id}")]),
//!     Some(0.0)
//! );
//! # Ok::<(), vitals_core::Error>(())
//! ```

mod adapter;
mod builder;
mod endpoint;
mod guard;
mod hint;
mod in_flight;
mod method;
mod options;
mod recorder;
pub mod route;
pub use crate::export::live;
mod schema;
mod sharded;
pub(crate) mod trace;

pub use adapter::{AdapterOptions, AdapterState, DEFAULT_ENDPOINT};
pub use builder::HttpMetricsBuilder;
pub use endpoint::{
    accepts_gzip, endpoint_response, endpoint_response_with, EndpointResponse, WireResponse, VARY,
};
pub use guard::{BodyCounter, RequestGuard, DECLARED_LENGTH_LIMIT};
pub use hint::RouteHint;
pub use recorder::HttpMetrics;
pub use schema::Naming;
pub use trace::TraceContext;

/// The status label of a request whose response never started: the client went away or the
/// server dropped the request's future. (nginx's "client closed request".)
pub const STATUS_CLIENT_CLOSED: u16 = 499;
/// The status label of a request whose handler panicked.
pub const STATUS_PANICKED: u16 = 500;

#[cfg(test)]
mod tests;
