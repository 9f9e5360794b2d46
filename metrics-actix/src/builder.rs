//! [`Metrics`], the transform `App::wrap` takes, and its [`MetricsBuilder`].

use std::fmt;
use std::sync::Arc;

use actix_web::HttpRequest;
use vitals_core::http::{AdapterOptions, AdapterState};
use vitals_core::Error;

type AccessHook = dyn Fn(&HttpRequest) -> bool + Send + Sync;

/// Records request rate, errors, latency and in-flight requests for every request through the
/// app it wraps, and answers `GET /metrics`. See the [crate docs](crate).
#[derive(Clone)]
pub struct Metrics {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// The recorder (or why it could not be built) and the endpoint's settings.
    pub(crate) state: AdapterState,
    pub(crate) access: Option<Box<AccessHook>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("state", &self.shared.state)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The middleware with every default: the process-wide registry
    /// ([`Registry::global`](vitals_core::Registry::global)), Prometheus names, `/metrics`
    /// served. It never panics: if the registry already holds metrics of the same names with
    /// another schema, requests pass unrecorded and `/metrics` answers 500 with the reason
    /// (with the `tracing` feature, the error is also logged once); [`builder`](Self::builder)
    /// gives that error instead.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: AdapterOptions::default().build_or_keep_error("vitals-actix"),
                access: None,
            }),
        }
    }

    /// Starts configuring the middleware; the options are those of vitals-tower's layer.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder {
            options: AdapterOptions::default(),
            access: None,
        }
    }
}

/// Configures [`Metrics`]; made by [`Metrics::builder`].
#[must_use = "nothing is built until `build` is called"]
pub struct MetricsBuilder {
    /// The options every adapter shares.
    options: AdapterOptions,
    access: Option<Box<AccessHook>>,
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl MetricsBuilder {
    vitals_core::__http_recorder_options!(options);

    /// Also records body sizes: the response's real bytes, and the request's, counted as the
    /// handler reads the payload (a chunked upload is measured; a payload left unread counts
    /// its declared `Content-Length`). Defaults to off.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.options = self.options.http(|h| h.body_sizes(on));
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

    /// Registers the HTTP metrics and builds the middleware.
    ///
    /// # Errors
    ///
    /// A conflict with metrics registered before under the same names with another schema.
    pub fn build(self) -> Result<Metrics, Error> {
        Ok(Metrics {
            shared: Arc::new(Shared {
                state: self.options.build()?,
                access: self.access,
            }),
        })
    }
}
