//! [`MetricsLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};
use tower_layer::Layer;
use vitals_core::http::{AdapterOptions, AdapterState};
use vitals_core::route::RouteTemplater;
use vitals_core::Error;

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
    /// The recorder (or why it could not be built) and the endpoint's settings.
    pub(crate) state: AdapterState,
    pub(crate) access: Option<Box<dyn EndpointAccess>>,
    pub(crate) templater: Option<RouteTemplater>,
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("state", &self.shared.state)
            .finish_non_exhaustive()
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsLayer {
    /// The layer with every default: the process-wide registry
    /// ([`Registry::global`](vitals_core::Registry::global)), Prometheus names, the latency
    /// buckets of [`Buckets::LATENCY_SECONDS`](vitals_core::Buckets::LATENCY_SECONDS),
    /// `/metrics` served.
    ///
    /// It never panics: if the registry already holds metrics of the same names with another
    /// schema, requests pass through unrecorded and `/metrics` answers 500 with the reason
    /// (with the `tracing` feature, the error is also logged once). Use
    /// [`builder`](Self::builder) and [`MetricsLayerBuilder::build`] to get that error.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: AdapterOptions::default().build_or_keep_error("vitals-tower"),
                access: None,
                templater: None,
            }),
        }
    }

    /// Starts configuring a layer.
    pub fn builder() -> MetricsLayerBuilder {
        MetricsLayerBuilder {
            options: AdapterOptions::default(),
            access: None,
            templater: None,
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
    /// The options every adapter shares.
    options: AdapterOptions,
    access: Option<Box<dyn EndpointAccess>>,
    templater: Option<RouteTemplater>,
}

impl fmt::Debug for MetricsLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayerBuilder")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl MetricsLayerBuilder {
    vitals_core::__http_recorder_options!(options);

    /// Also records body sizes: the response's real bytes, counted as they pass, and the
    /// request's. Under axum's `Router::layer` the request body's bytes are counted as the
    /// handler reads them (a chunked upload is measured; a body left unread counts its
    /// declared `Content-Length`); around other services the request is measured by its
    /// declared `Content-Length` only, and one without it records no request size. Defaults
    /// to off.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.options = self.options.http(|h| h.body_sizes(on));
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

    /// Registers the HTTP metrics and builds the layer.
    ///
    /// # Errors
    ///
    /// A conflict with metrics registered before under the same names with another schema.
    pub fn build(self) -> Result<MetricsLayer, Error> {
        Ok(MetricsLayer {
            shared: Arc::new(Shared {
                state: self.options.build()?,
                access: self.access,
                templater: self.templater,
            }),
        })
    }
}
