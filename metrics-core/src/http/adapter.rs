//! What every framework adapter shares, so that vitals-tower and vitals-actix keep only their
//! framework's glue: the options besides the framework's own, the state built from them, and
//! the answer of the metrics endpoint. Public for the authors of adapters to other
//! frameworks.

use crate::encoding::openmetrics::EncodeOptions;
use crate::error::Error;
use crate::registry::Registry;

use super::builder::HttpMetricsBuilder;
use super::endpoint::{endpoint_response_with, WireResponse};
use super::recorder::HttpMetrics;

/// The path of the metrics endpoint unless an adapter is told otherwise.
pub const DEFAULT_ENDPOINT: &str = "/metrics";

/// An adapter's options besides its framework's own: the recorder's, and the endpoint's.
/// Defaults: the process-wide registry ([`Registry::global`]), the recorder's defaults,
/// [`DEFAULT_ENDPOINT`] served and not counted, latency until the body ends.
#[derive(Debug, Clone)]
#[must_use = "nothing is registered until `build` is called"]
pub struct AdapterOptions {
    http: HttpMetricsBuilder,
    endpoint: Option<String>,
    count_endpoint: bool,
    headers_only: bool,
    openmetrics: EncodeOptions,
    live: bool,
}

impl Default for AdapterOptions {
    fn default() -> Self {
        Self::new(Registry::global())
    }
}

impl AdapterOptions {
    /// The default options, recording into `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            http: HttpMetrics::builder(registry),
            endpoint: Some(DEFAULT_ENDPOINT.to_owned()),
            count_endpoint: false,
            headers_only: false,
            openmetrics: EncodeOptions::default(),
            live: false,
        }
    }

    /// Changes the recorder's options.
    pub fn http(mut self, change: impl FnOnce(HttpMetricsBuilder) -> HttpMetricsBuilder) -> Self {
        self.http = change(self.http);
        self
    }

    /// Sets the path of the metrics endpoint, or `None` to serve none.
    pub fn endpoint(mut self, path: Option<&str>) -> Self {
        self.endpoint = path.map(str::to_owned);
        self
    }

    /// Whether requests to the metrics endpoint are recorded too.
    pub fn count_endpoint(mut self, count: bool) -> Self {
        self.count_endpoint = count;
        self
    }

    /// Whether the clock stops when the response headers are ready instead of when the body
    /// ends.
    pub fn headers_only(mut self, on: bool) -> Self {
        self.headers_only = on;
        self
    }

    /// Whether OpenMetrics answers carry `_created` samples (see
    /// [`openmetrics`](crate::encoding::openmetrics)).
    pub fn created_samples(mut self, on: bool) -> Self {
        self.openmetrics = self.openmetrics.created_samples(on);
        self
    }

    /// Whether the live page is served below the endpoint: `<endpoint>/live` and
    /// `<endpoint>/live.json` (see [`live`](crate::http::live)), behind the endpoint's access
    /// hook. Turning it on turns the registry's [windowed statistics](crate::window) on and
    /// starts their ticker. Off by default.
    pub fn live(mut self, on: bool) -> Self {
        self.live = on;
        self
    }

    /// Whether the live page will be served: it sits below the endpoint, so not without one.
    fn serves_live(&self) -> bool {
        self.live && self.endpoint.is_some()
    }

    /// Registers the HTTP metrics, and with [`live`](Self::live) turns the windowed
    /// statistics on.
    ///
    /// # Errors
    ///
    /// A conflict with metrics registered before under the same names with another schema;
    /// [`Error::InvalidWindow`] when the live page is on and the windows' ticker cannot start.
    pub fn build(self) -> Result<AdapterState, Error> {
        let registry = self.http.registry_ref().clone();
        let live = self.serves_live();
        let metrics = self.http.build()?;
        if live {
            super::live::enable(&registry)?;
        }
        Ok(AdapterState {
            metrics: Ok(metrics),
            registry,
            endpoint: self.endpoint,
            count_endpoint: self.count_endpoint,
            headers_only: self.headers_only,
            openmetrics: self.openmetrics,
            live,
        })
    }

    /// Registers the HTTP metrics, keeping the error if that fails: requests then pass
    /// unrecorded and the endpoint answers 500 with the reason. With the `tracing` feature
    /// the error is also logged, once, at error level. For the infallible constructors
    /// (`MetricsLayer::new()`, `Metrics::new()`); `adapter` names the caller in the log.
    pub fn build_or_keep_error(self, adapter: &'static str) -> AdapterState {
        let registry = self.http.registry_ref().clone();
        let (endpoint, count_endpoint, headers_only, openmetrics) = (
            self.endpoint.clone(),
            self.count_endpoint,
            self.headers_only,
            self.openmetrics,
        );
        let live = self.serves_live();
        self.build().unwrap_or_else(|error| {
            report(adapter, &error);
            AdapterState {
                metrics: Err(error),
                registry,
                endpoint,
                count_endpoint,
                headers_only,
                openmetrics,
                live,
            }
        })
    }
}

#[cfg(feature = "tracing")]
fn report(adapter: &'static str, error: &Error) {
    tracing::error!(
        adapter,
        %error,
        "vitals: the HTTP metrics could not be registered; requests pass unrecorded and the \
         metrics endpoint answers 500"
    );
}

#[cfg(not(feature = "tracing"))]
fn report(_: &'static str, _: &Error) {}

/// What an adapter built from its [`AdapterOptions`]: the recorder (or why there is none) and
/// the endpoint's settings.
#[derive(Debug)]
pub struct AdapterState {
    metrics: Result<HttpMetrics, Error>,
    registry: Registry,
    endpoint: Option<String>,
    count_endpoint: bool,
    headers_only: bool,
    openmetrics: EncodeOptions,
    live: bool,
}

impl AdapterState {
    /// The recorder, unless its registration failed.
    #[must_use]
    pub fn metrics(&self) -> Option<&HttpMetrics> {
        self.metrics.as_ref().ok()
    }

    /// Why the recorder could not be registered, if it could not.
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        self.metrics.as_ref().err()
    }

    /// The registry the endpoint serves.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The endpoint's path, if one is served.
    #[must_use]
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Whether requests to the endpoint are recorded.
    #[must_use]
    pub fn count_endpoint(&self) -> bool {
        self.count_endpoint
    }

    /// Whether the clock stops at the response headers.
    #[must_use]
    pub fn headers_only(&self) -> bool {
        self.headers_only
    }

    /// Whether the live page is served.
    #[must_use]
    pub fn live(&self) -> bool {
        self.live
    }

    /// Whether `path` is the endpoint's (or, with the live page on, the page's or its
    /// data's): check it before reading the headers [`answer`](Self::answer) needs, so that
    /// other requests pay one comparison (two with the live page).
    #[must_use]
    #[inline]
    pub fn is_endpoint(&self, path: &str) -> bool {
        let Some(endpoint) = self.endpoint.as_deref() else {
            return false;
        };
        endpoint == path || (self.live && super::live::LiveRequest::of(endpoint, path).is_some())
    }

    /// The endpoint's answer to a request for `path`, or `None` when `path` is not the
    /// endpoint's (or none is served). `accept` and `accept_encoding` are the request's
    /// headers; `allowed` (the access hook) is asked only for the endpoint's path.
    #[must_use]
    pub fn answer(
        &self,
        path: &str,
        method: &str,
        accept: Option<&str>,
        accept_encoding: Option<&str>,
        allowed: impl FnOnce() -> bool,
    ) -> Option<WireResponse> {
        let endpoint = self.endpoint.as_deref()?;
        if self.live && endpoint != path {
            let request = super::live::LiveRequest::of(endpoint, path)?;
            let answer = super::live::response(&self.registry, request, method, allowed());
            return Some(answer.into_wire(accept_encoding));
        }
        if endpoint != path {
            return None;
        }
        let answer = endpoint_response_with(
            &self.registry,
            method,
            accept,
            allowed(),
            self.metrics.as_ref().map(drop),
            self.openmetrics,
        );
        Some(answer.into_wire(accept_encoding))
    }
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// Keeps the message and level of every event.
    #[derive(Default)]
    struct Events {
        seen: Mutex<Vec<(tracing::Level, String)>>,
        spans: AtomicUsize,
    }

    struct Message<'a>(&'a mut String);

    impl Visit for Message<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
    }

    /// Hands every event to the shared [`Events`].
    struct Collect(Arc<Events>);

    impl Subscriber for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            let n = self.0.spans.fetch_add(1, Ordering::Relaxed);
            Id::from_u64(u64::try_from(n).unwrap_or(u64::MAX - 1) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0
                .seen
                .lock()
                .unwrap()
                .push((*event.metadata().level(), text));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn a_registration_conflict_in_the_infallible_constructor_is_logged_once() {
        let registry = Registry::new();
        registry
            .gauge("http_requests", "Taken by the application.")
            .register()
            .unwrap();
        let events = Arc::new(Events::default());
        let state = tracing::subscriber::with_default(Collect(Arc::clone(&events)), || {
            AdapterOptions::new(&registry).build_or_keep_error("test-adapter")
        });
        assert!(state.metrics().is_none());
        assert!(
            matches!(state.error(), Some(Error::Conflict { .. })),
            "{state:?}"
        );
        let seen = events.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (level, text) = &seen[0];
        assert_eq!(*level, tracing::Level::ERROR);
        assert!(
            text.contains("test-adapter") && text.contains("http_requests"),
            "{text}"
        );
        let answer = state
            .answer("/metrics", "GET", None, None, || true)
            .unwrap();
        assert_eq!(answer.status, 500);

        // A registration that succeeds logs nothing.
        let events = Arc::new(Events::default());
        let state = tracing::subscriber::with_default(Collect(Arc::clone(&events)), || {
            AdapterOptions::new(&Registry::new()).build_or_keep_error("test-adapter")
        });
        assert!(state.metrics().is_some());
        assert!(events.seen.lock().unwrap().is_empty());
    }
}
