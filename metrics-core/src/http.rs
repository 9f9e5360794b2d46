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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::Error;
use crate::family::SeriesIndex;
use crate::metric::Buckets;
use crate::route::UNMATCHED_ROUTE;
use crate::sharded::{ShardedCounter, ShardedHistogram};
use crate::util::padded::CachePadded;
use crate::util::shard::{Shard, Slots};
use crate::{Family, Registry};

/// The status label of a request whose response never started: the client went away or the
/// server dropped the request's future. (nginx's "client closed request".)
pub const STATUS_CLIENT_CLOSED: u16 = 499;
/// The status label of a request whose handler panicked.
pub const STATUS_PANICKED: u16 = 500;

/// The methods of RFC 9110 and PATCH, as they are; anything else is `_OTHER`, as
/// OpenTelemetry's conventions require (methods are case-sensitive: `get` is `_OTHER`).
#[must_use]
pub fn normalize_method(method: &str) -> &'static str {
    METHODS[usize::from(method_index(method))]
}

/// The method labels; a request's guard keeps an index into this.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

fn method_index(method: &str) -> u8 {
    match method {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "CONNECT" => 5,
        "OPTIONS" => 6,
        "TRACE" => 7,
        "PATCH" => 8,
        _ => 9,
    }
}

/// Which names and labels the HTTP metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Naming {
    /// `http_requests_total{method,route,status}`,
    /// `http_request_duration_seconds{method,route,status}`,
    /// `http_requests_in_flight{method,route}`, and the opt-in
    /// `http_request_size_bytes{method,route}` and `http_response_size_bytes{method,route}`.
    #[default]
    Prometheus,
    /// OpenTelemetry's semantic conventions:
    /// `http_server_request_duration_seconds{http_request_method,http_route,http_response_status_code,error_type}`
    /// (its `_count` is the request rate), `http_server_active_requests{http_request_method,http_route}`,
    /// and the opt-in `http_server_request_body_size_bytes` and
    /// `http_server_response_body_size_bytes`. `error_type` is the status code for 5xx,
    /// `cancelled` for [`STATUS_CLIENT_CLOSED`], and empty otherwise (4xx are not server errors).
    OpenTelemetry,
}

/// Configures [`HttpMetrics`]; made by [`HttpMetrics::builder`].
#[derive(Debug, Clone)]
#[must_use = "nothing is registered until `build` is called"]
pub struct HttpMetricsBuilder {
    registry: Registry,
    naming: Naming,
    buckets: Buckets,
    status_classes: bool,
    unmatched_route: String,
    excluded: Vec<String>,
    body_sizes: bool,
    series_cap: Option<usize>,
}

impl HttpMetricsBuilder {
    /// Records into this registry instead of the one the builder was made with.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// The registry the metrics are recorded into.
    #[must_use]
    pub fn registry_ref(&self) -> &Registry {
        &self.registry
    }

    /// Sets the naming preset. Defaults to [`Naming::Prometheus`].
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// Sets the latency buckets, in seconds. Defaults to [`Buckets::LATENCY_SECONDS`].
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.buckets = buckets;
        self
    }

    /// Labels statuses by class (`2xx`, `4xx`, ...) instead of by code. Defaults to codes.
    pub fn status_classes(mut self, classes: bool) -> Self {
        self.status_classes = classes;
        self
    }

    /// Sets the route label of requests that no route matched. Defaults to
    /// [`UNMATCHED_ROUTE`].
    pub fn unmatched_route(mut self, value: impl Into<String>) -> Self {
        self.unmatched_route = value.into();
        self
    }

    /// Records nothing for requests to this route template (such as `/health`). Defaults to
    /// none.
    pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
        self.excluded.push(route.into());
        self
    }

    /// Also records request and response body sizes. Defaults to off.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.body_sizes = on;
        self
    }

    /// Sets the series cap of each HTTP family. Defaults to the registry's.
    pub fn series_cap(mut self, cap: usize) -> Self {
        self.series_cap = Some(cap);
        self
    }

    /// Registers the families (or finds those a previous build registered with the same
    /// options) and returns the recorder. Building twice on one registry is fine: both
    /// recorders record into the same series.
    ///
    /// # Errors
    ///
    /// A conflict with metrics already registered under the same names with another schema.
    pub fn build(self) -> Result<HttpMetrics, Error> {
        let r = &self.registry;
        let cap = self.series_cap;
        let (requests, duration, in_flight, request_size, response_size);
        match self.naming {
            Naming::Prometheus => {
                requests = Some(
                    capped(
                        r.internal::<ShardedCounter>("http_requests", "HTTP requests served.", ())
                            .labels(["method", "route", "status"]),
                        cap,
                    )
                    .register()?,
                );
                in_flight = capped(
                    r.internal::<InFlight>(
                        "http_requests_in_flight",
                        "HTTP requests being served.",
                        (),
                    )
                    .labels(["method", "route"]),
                    cap,
                )
                .register()?;
                duration = capped(
                    r.internal::<ShardedHistogram>(
                        "http_request_duration",
                        "Time to serve HTTP requests, until the response body ended.",
                        self.buckets.clone(),
                    )
                    .unit("seconds")
                    .labels(["method", "route", "status"]),
                    cap,
                )
                .register()?;
                (request_size, response_size) = if self.body_sizes {
                    (
                        Some(size_family(
                            r,
                            "http_request_size",
                            "Sizes of HTTP request bodies.",
                            &["method", "route"],
                            self.series_cap,
                        )?),
                        Some(size_family(
                            r,
                            "http_response_size",
                            "Sizes of HTTP response bodies.",
                            &["method", "route"],
                            self.series_cap,
                        )?),
                    )
                } else {
                    (None, None)
                };
            }
            Naming::OpenTelemetry => {
                requests = None;
                in_flight = capped(
                    r.internal::<InFlight>(
                        "http_server_active_requests",
                        "Number of active HTTP server requests.",
                        (),
                    )
                    .labels(["http_request_method", "http_route"]),
                    cap,
                )
                .register()?;
                duration = capped(
                    r.internal::<ShardedHistogram>(
                        "http_server_request_duration",
                        "Duration of HTTP server requests.",
                        self.buckets.clone(),
                    )
                    .unit("seconds")
                    .labels([
                        "http_request_method",
                        "http_route",
                        "http_response_status_code",
                        "error_type",
                    ]),
                    cap,
                )
                .register()?;
                let labels = ["http_request_method", "http_route"];
                (request_size, response_size) = if self.body_sizes {
                    (
                        Some(size_family(
                            r,
                            "http_server_request_body_size",
                            "Size of HTTP server request bodies.",
                            &labels,
                            self.series_cap,
                        )?),
                        Some(size_family(
                            r,
                            "http_server_response_body_size",
                            "Size of HTTP server response bodies.",
                            &labels,
                            self.series_cap,
                        )?),
                    )
                } else {
                    (None, None)
                };
            }
        }
        let inner = Inner {
            naming: self.naming,
            status_classes: self.status_classes,
            unmatched: self.unmatched_route.into(),
            excluded: self.excluded.into_iter().map(Into::into).collect(),
            requests,
            duration,
            in_flight,
            request_size,
            response_size,
        };
        Ok(HttpMetrics {
            shared: (0..crate::util::shard::shard_count())
                .map(|_| Arc::new(CachePadded(inner.clone())))
                .collect(),
        })
    }
}

/// The recorder's options as methods of an adapter's builder that keeps its
/// [`HttpMetricsBuilder`] in the field `$field`, written once so that vitals-tower and
/// vitals-actix offer the same options with the same defaults. Used inside the adapter's
/// `impl` block; not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __http_recorder_options {
    ($field:ident) => {
        /// Records into this registry (a sub-registry view applies its prefix and labels).
        /// Defaults to [`Registry::global`](vitals_core::Registry::global).
        pub fn registry(mut self, registry: &$crate::Registry) -> Self {
            self.$field = self.$field.registry(registry);
            self
        }

        /// Sets the naming preset. Defaults to
        /// [`Naming::Prometheus`](vitals_core::http::Naming::Prometheus).
        pub fn naming(mut self, naming: $crate::http::Naming) -> Self {
            self.$field = self.$field.naming(naming);
            self
        }

        /// Sets the latency buckets, in seconds. Defaults to
        /// [`Buckets::LATENCY_SECONDS`](vitals_core::Buckets::LATENCY_SECONDS).
        pub fn buckets(mut self, buckets: $crate::Buckets) -> Self {
            self.$field = self.$field.buckets(buckets);
            self
        }

        /// Labels statuses `2xx`, `4xx`, ... instead of by code. Defaults to codes.
        pub fn status_classes(mut self, classes: bool) -> Self {
            self.$field = self.$field.status_classes(classes);
            self
        }

        /// Sets the route label of requests no route matched. Defaults to
        /// [`UNMATCHED_ROUTE`](vitals_core::route::UNMATCHED_ROUTE).
        pub fn unmatched_route(mut self, value: impl Into<String>) -> Self {
            self.$field = self.$field.unmatched_route(value);
            self
        }

        /// Records nothing for this route template (such as `/health`). Defaults to none.
        pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
            self.$field = self.$field.exclude_route(route);
            self
        }

        /// Sets the series cap of each HTTP family. Defaults to the registry's.
        pub fn series_cap(mut self, cap: usize) -> Self {
            self.$field = self.$field.series_cap(cap);
            self
        }
    };
}

/// What a metrics endpoint answers; adapters turn it into their framework's response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The `Allow` header, for a method other than `GET` and `HEAD`.
    pub allow: Option<&'static str>,
    /// The body (empty for `HEAD`).
    pub body: String,
}

/// The answer to a request for the metrics endpoint, the same in every adapter: `405` with
/// `Allow: GET, HEAD` for other methods, `403` when the access hook said no, `500` with the
/// reason when the HTTP metrics could not be registered, else `200` in the format the
/// `Accept` header asks for ([`Format::from_accept`](crate::encoding::Format::from_accept)).
#[must_use]
pub fn endpoint_response(
    registry: &Registry,
    method: &str,
    accept: Option<&str>,
    allowed: bool,
    registration: Result<(), &Error>,
) -> EndpointResponse {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let plain = |status, body: String| EndpointResponse {
        status,
        content_type: PLAIN,
        allow: None,
        body,
    };
    if method != "GET" && method != "HEAD" {
        return EndpointResponse {
            allow: Some("GET, HEAD"),
            ..plain(405, "use GET\n".to_owned())
        };
    }
    if !allowed {
        return plain(403, "forbidden\n".to_owned());
    }
    if let Err(error) = registration {
        return plain(
            500,
            format!("the HTTP metrics could not be registered: {error}\n"),
        );
    }
    let format = crate::encoding::Format::from_accept(accept);
    EndpointResponse {
        status: 200,
        content_type: format.content_type(),
        allow: None,
        body: if method == "HEAD" {
            String::new()
        } else {
            format.encode(registry)
        },
    }
}

fn capped<M: crate::Metric>(
    builder: crate::FamilyBuilder<'_, M>,
    cap: Option<usize>,
) -> crate::FamilyBuilder<'_, M> {
    match cap {
        Some(cap) => builder.series_cap(cap),
        None => builder,
    }
}

fn size_family(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    series_cap: Option<usize>,
) -> Result<Family<ShardedHistogram>, Error> {
    let builder = registry
        .internal::<ShardedHistogram>(name, help, Buckets::exponential(64.0, 4.0, 10)?)
        .unit("bytes")
        .labels(labels.iter().copied());
    capped(builder, series_cap).register()
}

/// Records the golden signals of HTTP requests into a registry. A cheap handle: clones share
/// the same families.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// The same recorder once per shard (see [`crate::util::shard`]): each request's guard holds
    /// its thread's copy, so that taking and dropping the reference writes a count on no
    /// other thread's cache line.
    shared: Arc<[Shared]>,
}

/// A recorder as a request's guard holds it, on cache lines of its own.
type Shared = Arc<CachePadded<Inner>>;

#[derive(Debug, Clone)]
struct Inner {
    naming: Naming,
    status_classes: bool,
    unmatched: Arc<str>,
    /// Usually empty or a few routes: a scan beats hashing every request's route.
    excluded: Box<[Box<str>]>,
    requests: Option<Family<ShardedCounter>>,
    duration: Family<ShardedHistogram>,
    in_flight: Family<InFlight>,
    request_size: Option<Family<ShardedHistogram>>,
    response_size: Option<Family<ShardedHistogram>>,
}

impl Inner {
    fn is_excluded(&self, route: &str) -> bool {
        self.excluded.iter().any(|excluded| **excluded == *route)
    }
}

impl HttpMetrics {
    /// Starts configuring a recorder of `registry` (see [`HttpMetricsBuilder`] for defaults).
    pub fn builder(registry: &Registry) -> HttpMetricsBuilder {
        HttpMetricsBuilder {
            registry: registry.clone(),
            naming: Naming::default(),
            buckets: Buckets::default(),
            status_classes: false,
            unmatched_route: UNMATCHED_ROUTE.to_owned(),
            excluded: Vec::new(),
            body_sizes: false,
            series_cap: None,
        }
    }

    /// The route label of requests that no route matched.
    #[must_use]
    pub fn unmatched_route(&self) -> &str {
        &self.shared[0].unmatched
    }

    /// A request arrives: counts it in flight now and returns the guard that records it.
    /// `route` is the route template if already known (`None` for unmatched, or set it later
    /// with [`RequestGuard::set_route`]).
    #[must_use = "the request is recorded when the guard finishes or drops"]
    pub fn start(&self, method: &str, route: Option<&str>) -> RequestGuard {
        let shard = crate::util::shard::current();
        let (shared, route, mut guard) = self.begin(shard, method, route);
        if let Some(shared) = shared {
            guard.enter(shared, route, shard);
        }
        guard
    }

    /// [`start`](Self::start) for an adapter that keeps a [`RouteHint`] per route: the
    /// first request of each method (on each shard) finds the route's in-flight series by its
    /// labels, and the first of each status its counter and histogram; the hint keeps them,
    /// so that the next requests go straight to them.
    ///
    /// A hint binds to the recorder and the route of its second request (its first is looked
    /// up, so that a hint used once costs nothing more than `start`). Given with another
    /// recorder or another route, it is not used, and the request is looked up as by
    /// [`start`](Self::start): still right, only not faster.
    ///
    /// ```
    /// use vitals_core::http::{HttpMetrics, RouteHint};
    /// use vitals_core::Registry;
    ///
    /// let registry = Registry::new();
    /// let metrics = HttpMetrics::builder(&registry).build()?;
    /// // Kept with the route, for as long as the route is served.
    /// let users = RouteHint::new();
    /// for _ in 0..3 {
    ///     let mut request = metrics.start_hinted("GET", Some("/users/{id}"), &users);
    ///     request.response(200);
    ///     request.finish();
    /// }
    /// let labels = [("method", "GET"), ("route", "/users/{id}"), ("status", "200")];
    /// assert_eq!(registry.get_sample_value("http_requests_total", &labels), Some(3.0));
    /// # Ok::<(), vitals_core::Error>(())
    /// ```
    #[must_use = "the request is recorded when the guard finishes or drops"]
    pub fn start_hinted(
        &self,
        method: &str,
        route: Option<&str>,
        hint: &RouteHint,
    ) -> RequestGuard {
        let shard = crate::util::shard::current();
        let (shared, route, mut guard) = self.begin(shard, method, route);
        let Some(shared) = shared else {
            return guard;
        };
        let bound = match hint.bound.get() {
            Some(bound) => bound,
            // A hint's first request is looked up, as by `start`: a hint that never sees a
            // second one (axum re-applies the layers of a router that is not served through
            // `with_state` for every request, each time with a new hint) costs nothing more.
            None if !hint.used.load(Ordering::Relaxed) => {
                hint.used.store(true, Ordering::Relaxed);
                guard.enter(shared, route, shard);
                return guard;
            }
            None => hint.bound.get_or_init(|| Bound {
                recorder: Arc::clone(&self.shared),
                route: route.into(),
                series: (0..METHODS.len() * self.shared.len())
                    .map(|_| OnceLock::new())
                    .collect(),
            }),
        };
        if !Arc::ptr_eq(&bound.recorder, &self.shared) || *bound.route != *route {
            guard.enter(shared, route, shard);
            return guard;
        }
        // One per method and shard: each shard's requests take and drop their own reference.
        let slot = &bound.series[usize::from(guard.method) * self.shared.len() + shard.index()];
        let series = match slot.get() {
            Some(series) => series,
            None => {
                // The first request of this method on this shard: the one lookup.
                let found = shared.in_flight.index_of(&[guard.method(), route]);
                match found {
                    Ok(index) if index.get().is_some() => {
                        slot.get_or_init(|| Arc::new(RouteSeries::new(shared, index)))
                    }
                    // The overflow series, which is counted at every lookup: none to keep.
                    _ => {
                        guard.count_in(shared, route, found, shard);
                        return guard;
                    }
                }
            }
        };
        series.in_flight.add(shard, 1);
        guard.target = Target::Route(Arc::clone(series));
        guard
    }

    /// What every start does first: the thread's copy of the recorder (`None` for an
    /// excluded route), the route label, and a guard that records nothing yet.
    #[inline(always)]
    fn begin<'a>(
        &'a self,
        shard: Shard,
        method: &str,
        route: Option<&'a str>,
    ) -> (Option<&'a Shared>, &'a str, RequestGuard) {
        // One copy per shard, so the thread's shard indexes it (no division per request).
        let shared = &self.shared[shard.index()];
        let route = route.unwrap_or(&shared.unmatched);
        let guard = RequestGuard {
            target: Target::Off,
            started: crate::util::clock::now(),
            sizes: None,
            status: NO_STATUS,
            method: method_index(method),
            upgraded: false,
        };
        let shared = (!shared.is_excluded(route)).then_some(shared);
        (shared, route, guard)
    }
}

/// Where one route's series are, for [`HttpMetrics::start_hinted`]: an adapter that keeps
/// state per route (vitals-actix per route pattern, vitals-tower per service that axum's
/// `Router::layer` wraps) keeps one of these with it, and its requests go straight to their
/// series, with neither their labels hashed nor their series looked up. Empty until its
/// second request (the first is looked up); then bound to that request's recorder and route.
/// Shared freely between threads.
#[derive(Debug, Default)]
pub struct RouteHint {
    /// Whether a request came with the hint yet.
    used: AtomicBool,
    bound: OnceLock<Bound>,
}

impl RouteHint {
    /// An empty hint.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a [`RouteHint`] holds once used.
#[derive(Debug)]
struct Bound {
    /// The recorder that used the hint first (its shards' copies, which identify it).
    recorder: Arc<[Shared]>,
    /// The route it was used with.
    route: Box<str>,
    /// The route's series per method and shard (`method * shards + shard`), found at the
    /// first request of each.
    series: Box<[OnceLock<Arc<RouteSeries>>]>,
}

/// One route's series for one method, as one shard's requests reach them: its in-flight
/// series, and the counter and histogram series of the statuses its requests ended with.
///
/// The handles stay right for the recorder's life: its families are its own (no caller can
/// reach them to remove a series), so their series are never removed or reset.
#[derive(Debug)]
struct RouteSeries {
    /// The shard's copy of the recorder: requests hold this, not the recorder.
    shared: Shared,
    in_flight: InFlight,
    /// Where `in_flight` is in its family, whose labels hold the route.
    index: SeriesIndex,
    /// The first statuses the route's requests ended with, where their series are; other
    /// statuses are looked up every time.
    ends: [OnceLock<End>; ROUTE_ENDS],
}

/// How many statuses per route, method and shard go straight to their series.
const ROUTE_ENDS: usize = 6;

/// Where requests that ended with `status` are counted and timed.
#[derive(Debug)]
struct End {
    status: u16,
    /// `None` with OpenTelemetry naming, whose request count is the histogram's.
    requests: Option<ShardedCounter>,
    duration: ShardedHistogram,
}

impl RouteSeries {
    /// The route's series, from its in-flight series' `index` in `shared`'s family.
    fn new(shared: &Shared, index: SeriesIndex) -> Self {
        Self {
            shared: Arc::clone(shared),
            in_flight: shared.in_flight.series(index).clone(),
            index,
            ends: Default::default(),
        }
    }

    /// The series of requests that ended with `status`, if remembered.
    #[inline]
    fn end(&self, status: u16) -> Option<&End> {
        for slot in &self.ends {
            let end = slot.get()?;
            if end.status == status {
                return Some(end);
            }
        }
        None
    }

    /// Remembers the series of `status` (indexes in the recorder's families) in the first
    /// free place, if there is one and none of them is an overflow series.
    fn remember(&self, status: u16, requests: Option<SeriesIndex>, duration: SeriesIndex) {
        let metrics = &*self.shared;
        if duration.get().is_none() || requests.is_some_and(|index| index.get().is_none()) {
            return;
        }
        let requests = match (&metrics.requests, requests) {
            (Some(family), Some(index)) => Some(family.series(index).clone()),
            _ => None,
        };
        if let Some(slot) = self.ends.iter().find(|slot| slot.get().is_none()) {
            // Another thread of a shared shard may take the place first: then this status is
            // remembered by the next request that ends with it.
            let _ = slot.set(End {
                status,
                requests,
                duration: metrics.duration.series(duration).clone(),
            });
        }
    }
}

/// What a request is recorded into.
#[derive(Debug)]
enum Target {
    /// Nothing: an excluded route, or recorded already.
    Off,
    /// A hinted route's series.
    Route(Arc<RouteSeries>),
    /// The shard's copy of the recorder, and where the request is counted in flight.
    Plain(Shared, RouteSlot),
}

/// Where a request's route is: the in-flight series it is counted in, whose label holds the
/// route, so that neither a copy of the route nor a second lookup is needed when the request
/// ends. Only a route that went to the overflow series is kept apart.
#[derive(Debug)]
enum RouteSlot {
    /// Not counted in flight (an excluded route, or recorded already).
    Unset,
    /// Counted in the in-flight series at this index.
    Series(SeriesIndex),
    /// Counted in the in-flight overflow series; the route is kept in the guard's
    /// [`Sizes::overflow_route`].
    Overflow(SeriesIndex),
}

/// Request bytes not given yet.
const NO_BYTES: u64 = u64::MAX;

/// The status of a request whose response has not started.
const NO_STATUS: u16 = 0;

/// One request being served; records it when finished or dropped (see the [module
/// docs](self) for what each ending records).
#[derive(Debug)]
pub struct RequestGuard {
    /// [`Target::Off`] for an excluded route, and once recorded: nothing (more) is recorded.
    target: Target,
    /// A reading of [`crate::util::clock`].
    started: u64,
    /// What only body sizes and the overflow series need, out of line (allocated for the
    /// requests that need it), so that the guard, which moves with the response future and
    /// body several times per request, stays small.
    sizes: Option<Box<Sizes>>,
    /// [`NO_STATUS`] until the response starts.
    status: u16,
    /// An index into [`METHODS`].
    method: u8,
    upgraded: bool,
}

/// The parts of a [`RequestGuard`] that most requests do not need.
#[derive(Debug)]
struct Sizes {
    /// The route of a request counted in the in-flight overflow series.
    overflow_route: Option<Box<str>>,
    /// [`NO_BYTES`] until the adapter gives the request body's size.
    request_bytes: u64,
    /// Counts the request body as the service reads it, when the adapter can watch it.
    request_counter: Option<BodyCounter>,
    response_bytes: u64,
}

impl RequestGuard {
    /// The out-of-line parts, made at first use.
    fn sizes(&mut self) -> &mut Sizes {
        self.sizes.get_or_insert_with(|| {
            Box::new(Sizes {
                overflow_route: None,
                request_bytes: NO_BYTES,
                request_counter: None,
                response_bytes: 0,
            })
        })
    }

    /// Sets the route once routing knows it (`None`: no route matched); the in-flight count
    /// moves to the new route.
    pub fn set_route(&mut self, route: Option<&str>) {
        let Some(shared) = self.shared().cloned() else {
            return;
        };
        let route = route.unwrap_or(&shared.unmatched);
        if self.route_str() == Some(route) {
            return;
        }
        self.leave();
        self.target = Target::Off;
        if !shared.is_excluded(route) {
            self.enter(&shared, route, crate::util::shard::current());
        }
    }

    /// Counts the request in flight under `route` in `shared`, on the thread's `shard`, by
    /// looking its series up.
    fn enter(&mut self, shared: &Shared, route: &str, shard: Shard) {
        let found = shared.in_flight.index_of(&[self.method(), route]);
        self.count_in(shared, route, found, shard);
    }

    /// Counts the request in flight under `route` in the series a lookup `found`.
    fn count_in(
        &mut self,
        shared: &Shared,
        route: &str,
        found: Result<SeriesIndex, Error>,
        shard: Shard,
    ) {
        // Label values are never refused: the family takes any string.
        let slot = match found {
            Ok(index) if index.get().is_some() => {
                shared.in_flight.series(index).add(shard, 1);
                RouteSlot::Series(index)
            }
            Ok(index) => {
                shared.in_flight.series(index).add(shard, 1);
                self.sizes().overflow_route = Some(route.into());
                RouteSlot::Overflow(index)
            }
            Err(_) => RouteSlot::Unset,
        };
        self.target = Target::Plain(Arc::clone(shared), slot);
    }

    /// Takes the request out of the in-flight count (the route stays known).
    fn leave(&self) {
        match &self.target {
            Target::Route(series) => series.in_flight.add(crate::util::shard::current(), -1),
            Target::Plain(shared, RouteSlot::Series(index) | RouteSlot::Overflow(index)) => {
                shared
                    .in_flight
                    .series(*index)
                    .add(crate::util::shard::current(), -1);
            }
            Target::Plain(_, RouteSlot::Unset) | Target::Off => {}
        }
    }

    /// The shard's copy of the recorder this request is recorded by; `None` when it is not.
    fn shared(&self) -> Option<&Shared> {
        match &self.target {
            Target::Off => None,
            Target::Route(series) => Some(&series.shared),
            Target::Plain(shared, _) => Some(shared),
        }
    }

    /// The method label.
    fn method(&self) -> &'static str {
        METHODS[usize::from(self.method)]
    }

    /// The route the request is counted under.
    fn route_str(&self) -> Option<&str> {
        match &self.target {
            Target::Off | Target::Plain(_, RouteSlot::Unset) => None,
            Target::Route(series) => series.shared.in_flight.label_value(series.index, 1),
            Target::Plain(shared, RouteSlot::Series(index)) => {
                shared.in_flight.label_value(*index, 1)
            }
            Target::Plain(_, RouteSlot::Overflow(_)) => {
                self.sizes.as_ref()?.overflow_route.as_deref()
            }
        }
    }

    /// The response started with this status.
    pub fn response(&mut self, status: u16) {
        self.status = status;
    }

    /// The response's headers are ready with `status` (a `101 Switching Protocols` marks the
    /// connection upgraded): the adapter's `guard` (if it records this request) then goes with
    /// the body until the body ends. With `stop_clock` (the adapters' headers-only option), it
    /// records the request now instead, and `guard` is left empty.
    #[inline]
    pub fn headers_ready(guard: &mut Option<Self>, status: u16, stop_clock: bool) {
        let Some(this) = guard.as_mut() else {
            return;
        };
        this.response(status);
        if status == 101 {
            this.upgraded();
        }
        if stop_clock {
            if let Some(this) = guard.take() {
                this.finish();
            }
        }
    }

    /// The connection was upgraded (WebSocket): the request is counted but its time is not a
    /// latency.
    pub fn upgraded(&mut self) {
        self.upgraded = true;
    }

    /// Adds bytes of the request body. A request whose body size was never given records no
    /// request size (nor does any request when request sizes are not recorded).
    pub fn add_request_bytes(&mut self, n: u64) {
        if !self.records_request_size() {
            return;
        }
        let sizes = self.sizes();
        sizes.request_bytes = match sizes.request_bytes {
            NO_BYTES => n,
            // Saturates below the sentinel.
            bytes => bytes.saturating_add(n).min(NO_BYTES - 1),
        };
    }

    /// Whether this request's body size is recorded (the recorder was built with body
    /// sizes on, and the route is not excluded): adapters skip watching the body otherwise.
    #[must_use]
    #[inline]
    pub fn records_request_size(&self) -> bool {
        self.shared().is_some_and(|m| m.request_size.is_some())
    }

    /// A counter for the adapter to add the request body's bytes to as the service reads
    /// them. The size recorded is then the larger of the bytes read and the declared
    /// `Content-Length`: a chunked upload is measured, and a body the handler did not read
    /// still counts what was declared.
    pub fn count_request_body(&mut self) -> BodyCounter {
        self.sizes()
            .request_counter
            .get_or_insert_with(|| BodyCounter(Arc::new(AtomicU64::new(0))))
            .clone()
    }

    /// Takes the request body's size from its `Content-Length` header, when it has a valid
    /// one. Adapters that cannot watch the request body without changing the request type
    /// the inner service accepts measure by declared length only; then a request without one
    /// (a chunked upload) records no request size.
    ///
    /// The header is read (`content_length` called) only when this request's body size is
    /// recorded: with body sizes off, no request pays for the lookup.
    #[inline]
    pub fn declared_request_length<'h>(
        &mut self,
        content_length: impl FnOnce() -> Option<&'h str>,
    ) {
        if self.records_request_size() {
            self.declare_request_length(content_length());
        }
    }

    fn declare_request_length(&mut self, content_length: Option<&str>) {
        if let Some(length) = content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
            self.add_request_bytes(length);
        }
    }

    /// Adds bytes of the response body (nothing when response sizes are not recorded).
    #[inline]
    pub fn add_response_bytes(&mut self, n: u64) {
        if self.shared().is_some_and(|m| m.response_size.is_some()) {
            let sizes = self.sizes();
            sizes.response_bytes = sizes.response_bytes.saturating_add(n);
        }
    }

    /// The response body ended: records the request.
    pub fn finish(self) {
        // Recorded here, so the drop has nothing to record: skip it, and drop what is left.
        let mut this = std::mem::ManuallyDrop::new(self);
        this.record(false);
        drop(this.sizes.take());
    }

    /// Records the request, once; `dropped` when the guard is dropped unfinished (then a
    /// panicking thread means a panicking handler).
    fn record(&mut self, dropped: bool) {
        if matches!(self.target, Target::Off) {
            return;
        }
        let status = if dropped && std::thread::panicking() {
            STATUS_PANICKED
        } else {
            match self.status {
                NO_STATUS => STATUS_CLIENT_CLOSED,
                status => status,
            }
        };
        self.record_as(status);
        self.target = Target::Off;
    }

    fn record_as(&self, status: u16) {
        let elapsed_nanos = crate::util::clock::nanos_since(self.started);
        let shard = crate::util::shard::current();
        let (metrics, (counter, histogram)) = match &self.target {
            Target::Off => return,
            Target::Route(series) => {
                series.in_flight.add(shard, -1);
                let ends = match series.end(status) {
                    Some(end) => (end.requests.as_ref(), Some(&end.duration)),
                    None => self.look_up_ends(&series.shared, status, Remember::Route(series)),
                };
                (&**series.shared, ends)
            }
            Target::Plain(shared, route) => {
                // The in-flight series, found once: counted out of, then asked (unless it is
                // the overflow series, which remembers nothing) where this route's requests
                // end.
                let remembering = match route {
                    RouteSlot::Unset => None,
                    RouteSlot::Series(index) | RouteSlot::Overflow(index) => {
                        let in_flight = shared.in_flight.series(*index);
                        in_flight.add(shard, -1);
                        matches!(route, RouteSlot::Series(_)).then_some(in_flight)
                    }
                };
                let remembered = remembering
                    .and_then(|in_flight| Self::remembered_ends(shared, in_flight, status));
                let ends = match (remembered, remembering) {
                    (Some(ends), _) => ends,
                    (None, Some(in_flight)) => {
                        self.look_up_ends(shared, status, Remember::InFlight(in_flight))
                    }
                    (None, None) => self.look_up_ends(shared, status, Remember::Nothing),
                };
                (&***shared, ends)
            }
        };
        if let Some(counter) = counter {
            counter.inc(shard);
        }
        // An upgraded connection's life is not a latency: it stays out of the histogram
        // (with OpenTelemetry naming, whose request count is the histogram's, it is not
        // counted either).
        if let (false, Some(histogram)) = (self.upgraded, histogram) {
            #[allow(clippy::cast_precision_loss)]
            histogram.observe(shard, elapsed_nanos as f64 * 1e-9);
        }
        if metrics.request_size.is_none() && metrics.response_size.is_none() {
            return;
        }
        let route = self.end_route(metrics, status);
        #[allow(clippy::cast_precision_loss)]
        for (family, bytes) in [
            (&metrics.request_size, self.request_size()),
            (
                &metrics.response_size,
                Some(self.sizes.as_ref().map_or(0, |s| s.response_bytes)),
            ),
        ] {
            let (Some(family), Some(bytes)) = (family, bytes) else {
                continue;
            };
            if let Ok(histogram) = family.label_values(&[self.method(), route]) {
                histogram.observe(shard, bytes as f64);
            }
        }
    }

    /// The request size to record: bytes read, declared length, or the larger of both.
    fn request_size(&self) -> Option<u64> {
        let sizes = self.sizes.as_deref()?;
        let declared = (sizes.request_bytes != NO_BYTES).then_some(sizes.request_bytes);
        match &sizes.request_counter {
            Some(counter) => Some(counter.get().max(declared.unwrap_or(0))),
            None => declared,
        }
    }

    /// The route a request that ended with `status` is recorded under: a 405 means no route
    /// took the method, so it counts with the requests no route matched.
    fn end_route<'a>(&'a self, metrics: &'a Inner, status: u16) -> &'a str {
        if status == 405 {
            &metrics.unmatched
        } else {
            self.route_str().unwrap_or(&metrics.unmatched)
        }
    }

    /// The series this route's requests ending with `status` went to before, as the in-flight
    /// series remembers them: no hashing, no label comparison.
    #[inline]
    fn remembered_ends<'a>(
        metrics: &'a Inner,
        in_flight: &InFlight,
        status: u16,
    ) -> Option<(Option<&'a ShardedCounter>, Option<&'a ShardedHistogram>)> {
        let (requests, duration) = in_flight.ends(status)?;
        let counter = match (&metrics.requests, requests) {
            (Some(family), Some(index)) => Some(family.live_series(index)?),
            (None, None) => None,
            _ => return None,
        };
        Some((counter, Some(metrics.duration.live_series(duration)?)))
    }

    /// Looks the series of this request's end up by their labels, and has `remember`
    /// remember where they are. An upgraded request has no histogram series (its time is not
    /// a latency), so nothing is remembered for it.
    #[cold]
    fn look_up_ends<'a>(
        &self,
        metrics: &'a Inner,
        status: u16,
        remember: Remember<'_>,
    ) -> (Option<&'a ShardedCounter>, Option<&'a ShardedHistogram>) {
        let mut code = itoa::Buffer::new();
        let class_digits;
        let status_label: &str = if metrics.status_classes {
            // Statuses are three digits (100 to 999); the class is the first and `xx`.
            #[allow(clippy::cast_possible_truncation)]
            let first = b'0' + (status / 100 % 10) as u8;
            class_digits = [first, b'x', b'x'];
            std::str::from_utf8(&class_digits).unwrap_or("xxx")
        } else {
            code.format(status)
        };
        let route = self.end_route(metrics, status);
        let method = self.method();
        // Label values are never refused: the families take any string of the right count.
        let requests = metrics.requests.as_ref().and_then(|family| {
            let index = family.index_of(&[method, route, status_label]).ok()?;
            Some((family, index))
        });
        let counter = requests.map(|(family, index)| family.series(index));
        if self.upgraded {
            return (counter, None);
        }
        let mut error_code = itoa::Buffer::new();
        let duration_index = match metrics.naming {
            Naming::Prometheus => metrics.duration.index_of(&[method, route, status_label]),
            Naming::OpenTelemetry => {
                let error_type = match status {
                    STATUS_CLIENT_CLOSED => "cancelled",
                    500..=599 => error_code.format(status),
                    _ => "",
                };
                metrics
                    .duration
                    .index_of(&[method, route, status_label, error_type])
            }
        };
        let Ok(duration_index) = duration_index else {
            return (counter, None);
        };
        let requests = requests.map(|(_, index)| index);
        match remember {
            Remember::Route(series) => series.remember(status, requests, duration_index),
            Remember::InFlight(in_flight) => in_flight.remember(status, requests, duration_index),
            Remember::Nothing => {}
        }
        (counter, Some(metrics.duration.series(duration_index)))
    }
}

/// Where [`RequestGuard::look_up_ends`] remembers the series it found.
enum Remember<'a> {
    /// A hinted route's own series.
    Route(&'a RouteSeries),
    /// The in-flight series of a request that was looked up.
    InFlight(&'a InFlight),
    /// Nowhere: the in-flight series is the overflow series.
    Nothing,
}

/// Counts the bytes of a request body as the service reads it; made by
/// [`RequestGuard::count_request_body`]. Clones count into the same total.
#[derive(Debug, Clone)]
pub struct BodyCounter(Arc<AtomicU64>);

impl BodyCounter {
    /// Adds `n` bytes read.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The bytes counted so far.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The in-flight gauge of one method and route. Besides its value it remembers, for the last
/// few statuses its requests ended with, where their counter and histogram series are, so
/// that the end of a request finds them without hashing labels again: one lookup per request
/// instead of three. Exposed as a plain gauge.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    core: Arc<CachePadded<InFlightCore>>,
}

#[derive(Debug)]
struct InFlightCore {
    /// The count, split into shards (see [`crate::util::shard`]) as an `i64` in two's
    /// complement: a request may be counted in on one thread and out on another.
    value: Slots,
    /// Each: status (16 bits; 0 is empty), counter index (24), histogram index (24).
    ends: [AtomicU64; ENDS],
}

/// How many statuses per method and route are remembered; others are looked up.
const ENDS: usize = 4;
/// An index that does not fit in 24 bits, or no counter (OpenTelemetry naming).
const NO_SERIES: u64 = (1 << 24) - 1;

impl InFlight {
    #[inline]
    fn add(&self, shard: Shard, delta: i64) {
        #[allow(clippy::cast_sign_loss)] // two's complement: adding it wraps to a subtraction
        self.core.value.add(shard, 0, delta as u64);
    }

    /// Where requests ending with `status` went: the counter's index (none with
    /// OpenTelemetry naming) and the histogram's.
    #[inline]
    fn ends(&self, status: u16) -> Option<(Option<SeriesIndex>, SeriesIndex)> {
        let status = u64::from(status);
        self.core.ends.iter().find_map(|slot| {
            let packed = slot.load(Ordering::Acquire);
            if packed >> 48 != status {
                return None;
            }
            let requests = (packed >> 24) & NO_SERIES;
            #[allow(clippy::cast_possible_truncation)] // 24 bits
            let requests = (requests != NO_SERIES).then(|| SeriesIndex::from_raw(requests as u32));
            #[allow(clippy::cast_possible_truncation)]
            Some((requests, SeriesIndex::from_raw((packed & NO_SERIES) as u32)))
        })
    }

    /// Remembers where requests ending with `status` went. Series in the overflow, or at
    /// indexes beyond 24 bits, are not remembered: they are looked up each time (which is how
    /// the overflow is counted).
    fn remember(&self, status: u16, requests: Option<SeriesIndex>, duration: SeriesIndex) {
        if status == 0 {
            return;
        }
        let fits = |index: SeriesIndex| index.get().filter(|&i| u64::from(i) < NO_SERIES);
        let Some(duration) = fits(duration) else {
            return;
        };
        let requests = match requests {
            Some(index) => match fits(index) {
                Some(i) => u64::from(i),
                None => return,
            },
            None => NO_SERIES,
        };
        let packed = u64::from(status) << 48 | requests << 24 | u64::from(duration);
        let slots = &self.core.ends;
        let slot = slots
            .iter()
            .find(|slot| {
                let current = slot.load(Ordering::Relaxed) >> 48;
                current == 0 || current == u64::from(status)
            })
            .unwrap_or(&slots[usize::from(status) % ENDS]);
        slot.store(packed, Ordering::Release);
    }
}

impl crate::Metric for InFlight {}

impl crate::metric::sealed::Sealed for InFlight {
    type Config = ();
    const KIND: crate::MetricKind = crate::MetricKind::Gauge;

    fn create((): &()) -> Self {
        Self {
            core: Arc::new(CachePadded(InFlightCore {
                value: Slots::new(1),
                ends: Default::default(),
            })),
        }
    }

    fn reset(&self, (): &()) {
        self.core.value.fill(0);
        for slot in &self.core.ends {
            slot.store(0, Ordering::Relaxed);
        }
    }

    fn read<'a>(
        &'a self,
        (): &'a (),
        _: &'a mut crate::metric::sealed::Scratch,
    ) -> crate::ValueRef<'a> {
        // The shards are read one after another: a request counted in on one shard and out on
        // another between two of those reads could make the sum -1 for that one scrape. No
        // request is ever in flight fewer than zero times.
        #[allow(clippy::cast_possible_wrap)] // two's complement, see `value`
        let value = (self.core.value.total(0) as i64).max(0);
        crate::ValueRef::Gauge(crate::Number::I64(value))
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.record(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(r: &str) -> Option<&str> {
        Some(r)
    }

    fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        registry.get_sample_value(name, labels)
    }

    #[test]
    fn the_guard_stays_small_because_it_moves_with_every_response() {
        // The guard is moved with the response future and into the body, several times per
        // request: what only some requests need lives out of line.
        assert!(std::mem::size_of::<RequestGuard>() <= 40);
        assert_eq!(
            std::mem::size_of::<Option<RequestGuard>>(),
            std::mem::size_of::<RequestGuard>()
        );
    }

    #[test]
    fn standard_methods_stay_and_others_become_other() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert_eq!(normalize_method(m), m);
        }
        for m in ["get", "PROPFIND", "", "G\u{0}T", "🚀", "QUERY"] {
            assert_eq!(normalize_method(m), "_OTHER", "{m:?}");
        }
    }

    #[test]
    fn every_ending_is_counted_once_and_in_flight_returns_to_zero() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry).build().unwrap();
        let r = "/items/{id}";

        let mut done = metrics.start("GET", route(r));
        assert_eq!(
            value(
                &registry,
                "http_requests_in_flight",
                &[("method", "GET"), ("route", r)]
            ),
            Some(1.0)
        );
        done.response(200);
        done.finish();

        drop(metrics.start("GET", route(r))); // the client went away before the response

        let mut cut = metrics.start("GET", route(r));
        cut.response(206);
        drop(cut); // the client went away during the body

        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = metrics.start("GET", route(r));
            guard.response(200); // headers were ready, then the body's handler panicked
            panic!("handler bug");
        }));
        assert!(panicked.is_err());

        let total = |status| {
            value(
                &registry,
                "http_requests_total",
                &[("method", "GET"), ("route", r), ("status", status)],
            )
        };
        assert_eq!(total("200"), Some(1.0));
        assert_eq!(total("499"), Some(1.0));
        assert_eq!(total("206"), Some(1.0));
        assert_eq!(total("500"), Some(1.0), "the panic");
        let latency_count = |status| {
            value(
                &registry,
                "http_request_duration_seconds_count",
                &[("method", "GET"), ("route", r), ("status", status)],
            )
        };
        assert_eq!(latency_count("499"), Some(1.0));
        assert_eq!(latency_count("500"), Some(1.0));
        assert_eq!(
            value(
                &registry,
                "http_requests_in_flight",
                &[("method", "GET"), ("route", r)]
            ),
            Some(0.0)
        );
    }

    #[test]
    fn remembered_series_stay_right_across_statuses_removals_and_overflow() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry).build().unwrap();
        // More statuses than a route remembers, interleaved, many times each.
        let statuses = [200_u16, 404, 500, 503, 201, 302, 200, 404];
        for _ in 0..50 {
            for &status in &statuses {
                let mut guard = metrics.start("GET", route("/r"));
                guard.response(status);
                guard.finish();
            }
        }
        for (status, expected) in [(200, 100.0), (404, 100.0), (500, 50.0), (302, 50.0)] {
            let code = status.to_string();
            let labels = [
                ("method", "GET"),
                ("route", "/r"),
                ("status", code.as_str()),
            ];
            assert_eq!(
                value(&registry, "http_requests_total", &labels),
                Some(expected)
            );
            assert_eq!(
                value(&registry, "http_request_duration_seconds_count", &labels),
                Some(expected)
            );
        }

        // The family is cleared: the next request brings its series back, not lost.
        metrics.shared[0].requests.as_ref().unwrap().clear();
        let mut guard = metrics.start("GET", route("/r"));
        guard.response(200);
        guard.finish();
        let ok = [("method", "GET"), ("route", "/r"), ("status", "200")];
        assert_eq!(value(&registry, "http_requests_total", &ok), Some(1.0));

        // Requests redirected to the overflow series are counted each time.
        let small = Registry::new();
        let capped = HttpMetrics::builder(&small).series_cap(1).build().unwrap();
        for path in ["/a", "/b", "/b", "/b"] {
            let mut guard = capped.start("GET", route(path));
            guard.response(200);
            guard.finish();
        }
        let overflow = [
            ("method", "__overflow__"),
            ("route", "__overflow__"),
            ("status", "__overflow__"),
        ];
        assert_eq!(value(&small, "http_requests_total", &overflow), Some(3.0));
        assert_eq!(
            value(
                &small,
                "vitals_series_overflow_total",
                &[("metric", "http_requests")]
            ),
            Some(3.0)
        );
    }

    #[test]
    fn the_recorders_families_cannot_be_registered_again_as_plain_metrics() {
        let registry = Registry::new();
        let _metrics = HttpMetrics::builder(&registry).build().unwrap();
        let errors = [
            registry
                .gauge("http_requests_in_flight", "HTTP requests being served.")
                .labels(["method", "route"])
                .register()
                .unwrap_err(),
            registry
                .counter("http_requests", "HTTP requests served.")
                .labels(["method", "route", "status"])
                .register()
                .unwrap_err(),
            registry
                .histogram(
                    "http_request_duration",
                    "Time to serve HTTP requests, until the response body ended.",
                )
                .unit("seconds")
                .labels(["method", "route", "status"])
                .register()
                .unwrap_err(),
        ];
        for error in errors {
            assert!(error.to_string().contains("HTTP recorder"), "{error}");
        }
        // A second recorder on the same registry shares it, as before.
        assert!(HttpMetrics::builder(&registry).build().is_ok());
    }

    #[test]
    fn upgraded_connections_are_counted_but_not_timed() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry).build().unwrap();
        let mut ws = metrics.start("GET", route("/ws"));
        ws.response(101);
        ws.upgraded();
        ws.finish();
        let labels = [("method", "GET"), ("route", "/ws"), ("status", "101")];
        assert_eq!(value(&registry, "http_requests_total", &labels), Some(1.0));
        assert_eq!(
            value(&registry, "http_request_duration_seconds_count", &labels),
            None
        );
    }

    #[test]
    fn headers_ready_keeps_the_guard_for_the_body_or_records_at_the_headers() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry).build().unwrap();
        let labels = |status| [("method", "GET"), ("route", "/r"), ("status", status)];
        let count = |status| value(&registry, "http_requests_total", &labels(status));
        let timed = |status| {
            value(
                &registry,
                "http_request_duration_seconds_count",
                &labels(status),
            )
        };
        // Kept for the body: nothing recorded until it finishes.
        let mut body = Some(metrics.start("GET", route("/r")));
        RequestGuard::headers_ready(&mut body, 200, false);
        assert_eq!(count("200"), None);
        body.expect("kept for the body").finish();
        assert_eq!((count("200"), timed("200")), (Some(1.0), Some(1.0)));
        // The clock stops at the headers: recorded now, nothing left to keep.
        let mut none = Some(metrics.start("GET", route("/r")));
        RequestGuard::headers_ready(&mut none, 204, true);
        assert!(none.is_none());
        assert_eq!((count("204"), timed("204")), (Some(1.0), Some(1.0)));
        // A 101 is an upgrade: counted, not timed.
        let mut ws = Some(metrics.start("GET", route("/r")));
        RequestGuard::headers_ready(&mut ws, 101, false);
        drop(ws);
        // No guard (an excluded route): nothing to do.
        let mut excluded = None;
        RequestGuard::headers_ready(&mut excluded, 200, true);
        assert_eq!((count("101"), timed("101")), (Some(1.0), None));
    }

    #[test]
    fn unmatched_excluded_and_moved_routes() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry)
            .exclude_route("/health")
            .unmatched_route("none")
            .build()
            .unwrap();
        metrics.start("POST", None).finish();
        assert_eq!(
            value(
                &registry,
                "http_requests_total",
                &[("method", "POST"), ("route", "none"), ("status", "499")]
            ),
            Some(1.0)
        );
        let mut health = metrics.start("GET", route("/health"));
        health.response(200);
        health.finish();
        assert_eq!(
            value(
                &registry,
                "http_requests_in_flight",
                &[("method", "GET"), ("route", "/health")]
            ),
            None,
            "an excluded route records nothing"
        );
        // Routing learned the route after the request started (actix): in flight moves.
        let mut late = metrics.start("GET", None);
        late.set_route(route("/late"));
        let in_flight = |r| {
            value(
                &registry,
                "http_requests_in_flight",
                &[("method", "GET"), ("route", r)],
            )
        };
        assert_eq!(in_flight("none"), Some(0.0));
        assert_eq!(in_flight("/late"), Some(1.0));
        late.set_route(route("/health")); // routed to an excluded route after all
        assert_eq!(in_flight("/late"), Some(0.0));
        late.finish();
        assert_eq!(
            value(
                &registry,
                "http_requests_total",
                &[("method", "GET"), ("route", "/health"), ("status", "499")]
            ),
            None
        );
    }

    #[test]
    fn a_405_counts_with_the_unmatched_requests() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry).build().unwrap();
        let mut guard = metrics.start("DELETE", route("/users/{id}"));
        guard.response(405);
        guard.finish();
        let total = |r| {
            value(
                &registry,
                "http_requests_total",
                &[("method", "DELETE"), ("route", r), ("status", "405")],
            )
        };
        assert_eq!(total(UNMATCHED_ROUTE), Some(1.0));
        assert_eq!(total("/users/{id}"), None);
        assert_eq!(
            value(
                &registry,
                "http_requests_in_flight",
                &[("method", "DELETE"), ("route", "/users/{id}")]
            ),
            Some(0.0)
        );
    }

    #[test]
    fn the_endpoint_answers_the_same_way_for_every_adapter() {
        let registry = Registry::new();
        let _metrics = HttpMetrics::builder(&registry).build().unwrap();
        let ok = endpoint_response(&registry, "GET", None, true, Ok(()));
        assert_eq!(
            (ok.status, ok.content_type),
            (200, crate::encoding::text::CONTENT_TYPE)
        );
        assert!(ok.body.contains("# TYPE http_requests_total counter"));
        let om = endpoint_response(
            &registry,
            "GET",
            Some("application/openmetrics-text"),
            true,
            Ok(()),
        );
        assert!(om.body.ends_with("# EOF\n"));
        let head = endpoint_response(&registry, "HEAD", None, true, Ok(()));
        assert_eq!((head.status, head.body.as_str()), (200, ""));
        let post = endpoint_response(&registry, "POST", None, true, Ok(()));
        assert_eq!((post.status, post.allow), (405, Some("GET, HEAD")));
        assert_eq!(
            endpoint_response(&registry, "GET", None, false, Ok(())).status,
            403
        );
        let error = Error::InvalidBuckets {
            reason: "x".to_owned(),
        };
        let failed = endpoint_response(&registry, "GET", None, true, Err(&error));
        assert_eq!(failed.status, 500);
        assert!(
            failed.body.contains("invalid histogram buckets"),
            "{}",
            failed.body
        );
    }

    #[test]
    fn statuses_can_be_grouped_into_classes() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry)
            .status_classes(true)
            .build()
            .unwrap();
        for status in [200, 204, 404, 503] {
            let mut guard = metrics.start("GET", route("/"));
            guard.response(status);
            guard.finish();
        }
        let total = |status| {
            value(
                &registry,
                "http_requests_total",
                &[("method", "GET"), ("route", "/"), ("status", status)],
            )
        };
        assert_eq!(total("2xx"), Some(2.0));
        assert_eq!(total("4xx"), Some(1.0));
        assert_eq!(total("5xx"), Some(1.0));
    }

    #[test]
    fn opentelemetry_naming_uses_the_semantic_conventions() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry)
            .naming(Naming::OpenTelemetry)
            .body_sizes(true)
            .build()
            .unwrap();
        for (status, bytes) in [(200, 10), (404, 20), (503, 30)] {
            let mut guard = metrics.start("PUT", route("/doc"));
            guard.add_request_bytes(bytes);
            guard.response(status);
            guard.finish();
        }
        drop(metrics.start("PUT", route("/doc")));
        let count = |status, error| {
            value(
                &registry,
                "http_server_request_duration_seconds_count",
                &[
                    ("http_request_method", "PUT"),
                    ("http_route", "/doc"),
                    ("http_response_status_code", status),
                    ("error_type", error),
                ],
            )
        };
        assert_eq!(count("200", ""), Some(1.0));
        assert_eq!(count("404", ""), Some(1.0), "4xx is not a server error");
        assert_eq!(count("503", "503"), Some(1.0));
        assert_eq!(count("499", "cancelled"), Some(1.0));
        assert_eq!(
            value(
                &registry,
                "http_server_active_requests",
                &[("http_request_method", "PUT"), ("http_route", "/doc")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &registry,
                "http_server_request_body_size_bytes_sum",
                &[("http_request_method", "PUT"), ("http_route", "/doc")]
            ),
            Some(60.0),
            "one observation per request, with all its bytes"
        );
        assert_eq!(value(&registry, "http_requests_total", &[]), None);
    }

    #[test]
    fn two_recorders_on_one_registry_share_series_and_two_registries_do_not() {
        let (a, b) = (Registry::new(), Registry::new());
        let first = HttpMetrics::builder(&a).build().unwrap();
        let second = HttpMetrics::builder(&a).build().unwrap();
        let other = HttpMetrics::builder(&b).build().unwrap();
        for metrics in [&first, &second, &other] {
            let mut guard = metrics.start("GET", route("/"));
            guard.response(200);
            guard.finish();
        }
        let labels = [("method", "GET"), ("route", "/"), ("status", "200")];
        assert_eq!(value(&a, "http_requests_total", &labels), Some(2.0));
        assert_eq!(value(&b, "http_requests_total", &labels), Some(1.0));
        // Other options on the same registry are a typed conflict, not a panic.
        let err = HttpMetrics::builder(&a)
            .buckets(Buckets::new([1.0]).unwrap())
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }

    /// The lines of `registry`'s exposition that hold counts (not times or sizes, which
    /// differ from run to run), sorted.
    fn counts(registry: &Registry) -> Vec<String> {
        let text = crate::encoding::text::encode(registry);
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| {
                !line.starts_with('#')
                    && (line.contains("_total{")
                        || line.contains("_count{")
                        || line.contains("in_flight{"))
            })
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn hinted_routes_record_exactly_what_lookups_record() {
        type Configure = fn(HttpMetricsBuilder) -> HttpMetricsBuilder;
        // Each with the threads it runs on.
        let configurations: [(Configure, usize); 5] = [
            (|b| b, 3),
            (|b| b.status_classes(true), 3),
            (|b| b.naming(Naming::OpenTelemetry), 3),
            (|b| b.body_sizes(true), 3),
            // Past the cap, requests go to the overflow series, which is counted per lookup.
            // On one thread: which label sets take the four places depends on the order the
            // threads reach each registry in.
            (|b| b.series_cap(4), 1),
        ];
        // More statuses per route than a hint remembers, upgrades, 405s and requests that
        // never got a response, on three threads (one with a cap).
        let statuses = [
            200_u16, 404, 500, 201, 304, 503, 418, 302, 405, 101, NO_STATUS,
        ];
        let routes = ["/users/{id}", "/orders/{id}", "/health"];
        for (c, (configure, threads)) in configurations.into_iter().enumerate() {
            let (looked_up, hinted) = (Registry::new(), Registry::new());
            let plain = configure(HttpMetrics::builder(&looked_up)).build().unwrap();
            let fast = configure(HttpMetrics::builder(&hinted)).build().unwrap();
            let hints: Vec<RouteHint> = routes.iter().map(|_| RouteHint::new()).collect();
            std::thread::scope(|scope| {
                for thread in 0..threads {
                    let (plain, fast, hints) = (&plain, &fast, &hints);
                    scope.spawn(move || {
                        for i in 0..300 {
                            let method = ["GET", "POST", "BREW"][(i + thread) % 3];
                            let r = i % routes.len();
                            let status = statuses[(i / 3 + thread) % statuses.len()];
                            let guards = [
                                plain.start(method, Some(routes[r])),
                                fast.start_hinted(method, Some(routes[r]), &hints[r]),
                            ];
                            for mut guard in guards {
                                guard.add_request_bytes(10);
                                if status != NO_STATUS {
                                    guard.response(status);
                                    guard.add_response_bytes(100);
                                }
                                if status == 101 {
                                    guard.upgraded();
                                }
                                if status == NO_STATUS {
                                    drop(guard);
                                } else {
                                    guard.finish();
                                }
                            }
                        }
                    });
                }
            });
            let expected = counts(&looked_up);
            assert!(expected.len() > 10, "configuration {c}: {expected:?}");
            assert_eq!(counts(&hinted), expected, "configuration {c}");
        }
    }

    #[test]
    fn a_route_hint_records_what_a_lookup_would_for_every_method_and_recorder() {
        let (a, b) = (Registry::new(), Registry::new());
        let first = HttpMetrics::builder(&a).build().unwrap();
        let other = HttpMetrics::builder(&b).build().unwrap();
        // So that the other recorder has another route where the hint's series would be.
        other.start("GET", route("/")).finish();
        let hint = RouteHint::new();
        let in_flight = |registry: &Registry, method: &str| {
            value(
                registry,
                "http_requests_in_flight",
                &[("method", method), ("route", "/users/{id}")],
            )
        };
        // The first request of each method fills the hint, the next ones use it; a hint
        // that another recorder used first is not used (it names another family's series).
        let mut guards = Vec::new();
        for (metrics, method) in [
            (&first, "GET"),
            (&first, "GET"),
            (&first, "POST"),
            (&other, "GET"),
            (&first, "GET"),
            (&first, "BREW"),
        ] {
            guards.push(metrics.start_hinted(method, route("/users/{id}"), &hint));
        }
        assert_eq!(in_flight(&a, "GET"), Some(3.0));
        assert_eq!(in_flight(&a, "POST"), Some(1.0));
        assert_eq!(in_flight(&a, "_OTHER"), Some(1.0));
        assert_eq!(in_flight(&b, "GET"), Some(1.0));
        for (i, mut guard) in guards.into_iter().enumerate() {
            guard.response(if i == 1 { 500 } else { 200 });
            guard.finish();
        }
        assert_eq!(in_flight(&a, "GET"), Some(0.0));
        assert_eq!(in_flight(&b, "GET"), Some(0.0));
        let total = |registry: &Registry, method: &str, status: &str| {
            value(
                registry,
                "http_requests_total",
                &[
                    ("method", method),
                    ("route", "/users/{id}"),
                    ("status", status),
                ],
            )
        };
        assert_eq!(total(&a, "GET", "200"), Some(2.0));
        assert_eq!(total(&a, "GET", "500"), Some(1.0));
        assert_eq!(total(&a, "POST", "200"), Some(1.0));
        assert_eq!(total(&a, "_OTHER", "200"), Some(1.0));
        assert_eq!(total(&b, "GET", "200"), Some(1.0));
        // A hint given with a route other than its first is not used: the request is counted
        // under its own route, not the one the hint found.
        let mut moved = first.start_hinted("GET", route("/orders/{id}"), &hint);
        let orders = [("method", "GET"), ("route", "/orders/{id}")];
        assert_eq!(value(&a, "http_requests_in_flight", &orders), Some(1.0));
        assert_eq!(in_flight(&a, "GET"), Some(0.0));
        moved.response(200);
        moved.finish();
        let orders_ok = [
            ("method", "GET"),
            ("route", "/orders/{id}"),
            ("status", "200"),
        ];
        assert_eq!(value(&a, "http_requests_total", &orders_ok), Some(1.0));
        assert_eq!(total(&a, "GET", "200"), Some(2.0));
        // A hint is shared between threads.
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        let mut guard = first.start_hinted("GET", route("/users/{id}"), &hint);
                        guard.response(200);
                        guard.finish();
                    }
                });
            }
        });
        assert_eq!(total(&a, "GET", "200"), Some(202.0));
        assert_eq!(in_flight(&a, "GET"), Some(0.0));
        // A hint used once is never bound (nothing kept, nothing allocated); the second
        // request binds it.
        let once = RouteHint::new();
        for bound in [false, true] {
            let mut guard = first.start_hinted("GET", route("/users/{id}"), &once);
            guard.response(200);
            guard.finish();
            assert_eq!(once.bound.get().is_some(), bound);
        }
        assert_eq!(total(&a, "GET", "200"), Some(204.0));
        // An excluded route records nothing, hint or not.
        let excluding = HttpMetrics::builder(&Registry::new())
            .exclude_route("/health")
            .build()
            .unwrap();
        let guard = excluding.start_hinted("GET", route("/health"), &RouteHint::new());
        assert!(!guard.records_request_size() && matches!(guard.target, Target::Off));
    }

    #[test]
    fn hostile_methods_and_routes_never_panic_and_stay_bounded() {
        let registry = Registry::new();
        let metrics = HttpMetrics::builder(&registry)
            .series_cap(50)
            .build()
            .unwrap();
        for i in 0..2_000 {
            let method = format!("M{i}\u{0}\n\"");
            let path = format!("/{i}/\"\\\n{{}}");
            let mut guard = metrics.start(&method, Some(path.as_str()));
            guard.response(200);
            guard.finish();
        }
        assert_eq!(
            value(
                &registry,
                "http_requests_total",
                &[
                    ("method", "__overflow__"),
                    ("route", "__overflow__"),
                    ("status", "__overflow__")
                ]
            ),
            Some(1_950.0),
            "50 series, then the overflow: nothing lost, nothing unbounded"
        );
        let text = crate::encoding::text::encode(&registry);
        assert!(
            !text.contains("M1\u{0}"),
            "methods are normalised before they are labels"
        );
    }
}
