//! [`MetricsLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};
use tower_layer::Layer;
use vitals_core::http::{HttpMetrics, HttpMetricsBuilder};
use vitals_core::route::RouteTemplater;
use vitals_core::{Error, Registry};

use crate::service::Metrics;

/// Decides who may read the metrics endpoint. Closures taking an [`EndpointRequest`] and
/// returning `bool` are hooks too.
pub trait EndpointAccess: Send + Sync + 'static {
    /// Whether this request may read the metrics (`false` answers 403).
    fn allow(&self, request: &EndpointRequest<'_>) -> bool;
}

impl<F> EndpointAccess for F
where
    F: Fn(&EndpointRequest<'_>) -> bool + Send + Sync + 'static,
{
    fn allow(&self, request: &EndpointRequest<'_>) -> bool {
        self(request)
    }
}

/// What an [`EndpointAccess`] hook sees of a request to the metrics endpoint.
#[derive(Debug)]
#[non_exhaustive]
pub struct EndpointRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers (`Authorization`, ...).
    pub headers: &'a HeaderMap,
    /// The extensions (axum's `ConnectInfo`, ...).
    pub extensions: &'a Extensions,
}

/// Records request rate, errors, latency and in-flight requests for every request through the
/// service it wraps, and answers `GET /metrics`. See the [crate docs](crate).
#[derive(Clone)]
pub struct MetricsLayer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// The recorder, or why it could not be built (then requests pass unrecorded and the
    /// endpoint answers 500 with the reason).
    pub(crate) metrics: Result<HttpMetrics, Error>,
    pub(crate) registry: Registry,
    pub(crate) endpoint: Option<String>,
    pub(crate) count_endpoint: bool,
    pub(crate) access: Option<Box<dyn EndpointAccess>>,
    pub(crate) templater: Option<RouteTemplater>,
    pub(crate) headers_only: bool,
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("metrics", &self.shared.metrics)
            .field("endpoint", &self.shared.endpoint)
            .field("headers_only", &self.shared.headers_only)
            .finish_non_exhaustive()
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsLayer {
    /// The layer with every default: the process-wide registry, Prometheus names, the
    /// latency buckets of [`Buckets::LATENCY_SECONDS`](vitals_core::Buckets::LATENCY_SECONDS),
    /// `/metrics` served.
    ///
    /// It never panics: if the registry already holds metrics of the same names with another
    /// schema, requests pass through unrecorded and `/metrics` answers 500 with the reason.
    /// Use [`builder`](Self::builder) and [`MetricsLayerBuilder::build`] to get that error.
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
                templater: None,
                headers_only: false,
            }),
        })
    }

    /// Starts configuring a layer.
    pub fn builder() -> MetricsLayerBuilder {
        MetricsLayerBuilder {
            http: HttpMetrics::builder(Registry::global()),
            endpoint: Some("/metrics".to_owned()),
            count_endpoint: false,
            access: None,
            templater: None,
            headers_only: false,
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner, Arc::clone(&self.shared))
    }
}

/// Configures a [`MetricsLayer`]; made by [`MetricsLayer::builder`].
#[must_use = "nothing is built until `build` is called"]
pub struct MetricsLayerBuilder {
    /// The recorder's options, shared with every adapter.
    http: HttpMetricsBuilder,
    endpoint: Option<String>,
    count_endpoint: bool,
    access: Option<Box<dyn EndpointAccess>>,
    templater: Option<RouteTemplater>,
    headers_only: bool,
}

impl fmt::Debug for MetricsLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayerBuilder")
            .field("http", &self.http)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl MetricsLayerBuilder {
    vitals_core::__http_recorder_options!(http);

    /// Also records body sizes: the response's real bytes, counted as they pass, and the
    /// request's. Under axum's `Router::layer` the request body's bytes are counted as the
    /// handler reads them (a chunked upload is measured; a body left unread counts its
    /// declared `Content-Length`); around other services the request is measured by its
    /// declared `Content-Length` only, and one without it records no request size. Defaults
    /// to off.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.http = self.http.body_sizes(on);
        self
    }

    /// Sets the path of the metrics endpoint, or `None` to serve none. Defaults to
    /// `/metrics`.
    pub fn endpoint(mut self, path: Option<&str>) -> Self {
        self.endpoint = path.map(str::to_owned);
        self
    }

    /// Whether requests to the metrics endpoint are recorded too. Defaults to no.
    pub fn count_endpoint(mut self, count: bool) -> Self {
        self.count_endpoint = count;
        self
    }

    /// Lets a hook decide who may read the endpoint; others get 403. Defaults to everyone.
    pub fn endpoint_access(mut self, hook: impl EndpointAccess) -> Self {
        self.access = Some(Box::new(hook));
        self
    }

    /// Templates routes from raw paths, for services whose router does not name routes
    /// (a plain hyper service, or a service nested with axum's `Router::nest_service`, whose
    /// requests axum gives no `MatchedPath`). With the `axum` feature, axum's `MatchedPath`
    /// comes first. Defaults to none: requests without a named route share the unmatched
    /// route label. See the [crate docs](crate) for nested services.
    pub fn route_templater(mut self, templater: RouteTemplater) -> Self {
        self.templater = Some(templater);
        self
    }

    /// Stops the clock when the response headers are ready instead of when the body ends.
    /// Defaults to off: latency covers the whole body.
    pub fn headers_only(mut self, on: bool) -> Self {
        self.headers_only = on;
        self
    }

    /// Registers the HTTP metrics and builds the layer.
    ///
    /// # Errors
    ///
    /// A conflict with metrics registered before under the same names with another schema.
    pub fn build(self) -> Result<MetricsLayer, Error> {
        let registry = self.http.registry_ref().clone();
        Ok(MetricsLayer {
            shared: Arc::new(Shared {
                metrics: Ok(self.http.build()?),
                registry,
                endpoint: self.endpoint,
                count_endpoint: self.count_endpoint,
                access: self.access,
                templater: self.templater,
                headers_only: self.headers_only,
            }),
        })
    }
}
