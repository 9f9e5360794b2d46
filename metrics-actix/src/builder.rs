//! [`Metrics`], the transform `App::wrap` takes, and its [`MetricsBuilder`].

use std::fmt;
use std::sync::Arc;

use actix_web::HttpRequest;
use vitals_core::http::{HttpMetrics, HttpMetricsBuilder};
use vitals_core::{Error, Registry};

type AccessHook = dyn Fn(&HttpRequest) -> bool + Send + Sync;

/// Records request rate, errors, latency and in-flight requests for every request through the
/// app it wraps, and answers `GET /metrics`. See the [crate docs](crate).
#[derive(Clone)]
pub struct Metrics {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// The recorder, or why it could not be built (then requests pass unrecorded and the
    /// endpoint answers 500 with the reason).
    pub(crate) metrics: Result<HttpMetrics, Error>,
    pub(crate) registry: Registry,
    pub(crate) endpoint: Option<String>,
    pub(crate) count_endpoint: bool,
    pub(crate) access: Option<Box<AccessHook>>,
    pub(crate) headers_only: bool,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("metrics", &self.shared.metrics)
            .field("endpoint", &self.shared.endpoint)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The middleware with every default: the process-wide registry, Prometheus names,
    /// `/metrics` served. It never panics: if the registry already holds metrics of the same
    /// names with another schema, requests pass unrecorded and `/metrics` answers 500 with the
    /// reason ([`builder`](Self::builder) gives that error instead).
    #[must_use]
    pub fn new() -> Self {
        let builder = Self::builder();
        let registry = builder.http.registry_ref().clone();
        builder.build().unwrap_or_else(|error| Self {
            shared: Arc::new(Shared {
                metrics: Err(error),
                registry,
                endpoint: Some("/metrics".to_owned()),
                count_endpoint: false,
                access: None,
                headers_only: false,
            }),
        })
    }

    /// Starts configuring the middleware; the options are those of vitals-tower's layer.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder {
            http: HttpMetrics::builder(Registry::global()),
            endpoint: Some("/metrics".to_owned()),
            count_endpoint: false,
            access: None,
            headers_only: false,
        }
    }
}

/// Configures [`Metrics`]; made by [`Metrics::builder`].
#[must_use = "nothing is built until `build` is called"]
pub struct MetricsBuilder {
    /// The recorder's options, shared with every adapter.
    http: HttpMetricsBuilder,
    endpoint: Option<String>,
    count_endpoint: bool,
    access: Option<Box<AccessHook>>,
    headers_only: bool,
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("http", &self.http)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl MetricsBuilder {
    vitals_core::__http_recorder_options!(http);

    /// Also records body sizes: the response's real bytes, and the request's, counted as the
    /// handler reads the payload (a chunked upload is measured; a payload left unread counts
    /// its declared `Content-Length`). Defaults to off.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.http = self.http.body_sizes(on);
        self
    }

    /// Sets the path of the metrics endpoint, or `None` to serve none. Defaults to `/metrics`.
    pub fn endpoint(mut self, path: Option<&str>) -> Self {
        self.endpoint = path.map(str::to_owned);
        self
    }

    /// Whether requests to the metrics endpoint are recorded too. Defaults to no.
    pub fn count_endpoint(mut self, count: bool) -> Self {
        self.count_endpoint = count;
        self
    }

    /// Lets a hook decide who may read the endpoint (403 otherwise). Defaults to everyone.
    pub fn endpoint_access(
        mut self,
        hook: impl Fn(&HttpRequest) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.access = Some(Box::new(hook));
        self
    }

    /// Stops the clock when the response headers are ready instead of when the body ends.
    /// Defaults to off.
    pub fn headers_only(mut self, on: bool) -> Self {
        self.headers_only = on;
        self
    }

    /// Registers the HTTP metrics and builds the middleware.
    ///
    /// # Errors
    ///
    /// A conflict with metrics registered before under the same names with another schema.
    pub fn build(self) -> Result<Metrics, Error> {
        let registry = self.http.registry_ref().clone();
        Ok(Metrics {
            shared: Arc::new(Shared {
                metrics: Ok(self.http.build()?),
                registry,
                endpoint: self.endpoint,
                count_endpoint: self.count_endpoint,
                access: self.access,
                headers_only: self.headers_only,
            }),
        })
    }
}
