//! [`Metrics`] (the transform), [`MetricsMiddleware`] (the service) and [`MetricsResponse`].

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use pin_project_lite::pin_project;
use vitals_core::http::{endpoint_response, HttpMetrics, HttpMetricsBuilder, RequestGuard};
use vitals_core::{Error, Registry};

use crate::body::MetricsBody;
use crate::patterns::{Patterns, Pending};

type AccessHook = dyn Fn(&HttpRequest) -> bool + Send + Sync;

/// Records request rate, errors, latency and in-flight requests for every request through the
/// app it wraps, and answers `GET /metrics`. See the [crate docs](crate).
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

struct Shared {
    /// The recorder, or why it could not be built (then requests pass unrecorded and the
    /// endpoint answers 500 with the reason).
    metrics: Result<HttpMetrics, Error>,
    registry: Registry,
    endpoint: Option<String>,
    count_endpoint: bool,
    access: Option<Box<AccessHook>>,
    headers_only: bool,
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

impl<S, B> Transform<S, ServiceRequest> for Metrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<MetricsBody<B>>;
    type Error = actix_web::Error;
    type Transform = MetricsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MetricsMiddleware {
            service,
            shared: Arc::clone(&self.shared),
            patterns: Rc::default(),
        }))
    }
}

/// The service [`Metrics`] wraps around the app.
pub struct MetricsMiddleware<S> {
    service: S,
    shared: Arc<Shared>,
    /// Recent answers of `match_pattern()`, and patterns to guess from, per worker.
    patterns: Rc<Patterns>,
}

impl<S> fmt::Debug for MetricsMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsMiddleware").finish_non_exhaustive()
    }
}

impl<S> MetricsMiddleware<S> {
    /// The endpoint's response, when this request is for it.
    fn endpoint(&self, request: &ServiceRequest) -> Option<HttpResponse<Bytes>> {
        let path = self.shared.endpoint.as_deref()?;
        if request.path() != path {
            return None;
        }
        let allowed = self
            .shared
            .access
            .as_ref()
            .is_none_or(|access| access(request.request()));
        let accept = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let answer = endpoint_response(
            &self.shared.registry,
            request.method().as_str(),
            accept,
            allowed,
            self.shared.metrics.as_ref().map(drop),
        );
        let status =
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::with_body(status, Bytes::from(answer.body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        );
        if let Some(allow) = answer.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        Some(response)
    }

    /// Starts recording `request`, with its route's answer to check after routing when it
    /// did not come from the tables of known paths.
    fn start(&self, request: &ServiceRequest) -> (Option<RequestGuard>, Option<Box<Pending>>) {
        let Ok(metrics) = self.shared.metrics.as_ref() else {
            return (None, None);
        };
        let method = request.method().as_str();
        // The route before routing, so that the in-flight gauge counts the request under it
        // while the handler runs.
        let (mut guard, pending) = self.patterns.with_pattern(request, |pattern, hint| {
            metrics.start_hinted(method, pattern, hint)
        });
        guard.declared_request_length(|| {
            request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
        });
        (Some(guard), pending)
    }
}

impl<S, B> Service<ServiceRequest> for MetricsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<MetricsBody<B>>;
    type Error = actix_web::Error;
    type Future = MetricsResponse<S::Future, B>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        if let Some(response) = self.endpoint(&request) {
            let guard = if self.shared.count_endpoint {
                let (guard, pending) = self.start(&request);
                guard.map(|mut guard| {
                    if let Some(pending) = pending {
                        // Not routed: the answer is checked by a walk of the map.
                        pending.settle(&mut guard, None);
                    }
                    guard.response(response.status().as_u16());
                    guard
                })
            } else {
                None
            };
            let response = request
                .into_response(response)
                .map_body(|_, body| MetricsBody::endpoint(body, guard));
            return MetricsResponse::ready(response);
        }
        let mut request = request;
        let (mut guard, pending) = self.start(&request);
        if let Some(guard) = guard.as_mut() {
            crate::body::count_request_payload(&mut request, guard);
        }
        MetricsResponse::pending(
            self.service.call(request),
            guard,
            pending,
            self.shared.headers_only,
        )
    }
}

pin_project! {
    /// The response future of [`MetricsMiddleware`].
    pub struct MetricsResponse<F, B> {
        #[pin]
        future: Option<F>,
        // The endpoint's response, boxed: scrapes are rare, and this future is moved several
        // times on its way to the server (a few hundred bytes copied per request otherwise).
        ready: Option<Box<ServiceResponse<MetricsBody<B>>>>,
        // Dropped with the future if the client goes away first: recorded as 499.
        guard: Option<RequestGuard>,
        // A route answered before routing without the tables, checked when the response
        // comes; boxed, as only requests for paths not seen before have one.
        pending: Option<Box<Pending>>,
        headers_only: bool,
    }
}

impl<F, B> fmt::Debug for MetricsResponse<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsResponse").finish_non_exhaustive()
    }
}

impl<F, B> MetricsResponse<F, B> {
    fn pending(
        future: F,
        guard: Option<RequestGuard>,
        pending: Option<Box<Pending>>,
        headers_only: bool,
    ) -> Self {
        Self {
            future: Some(future),
            ready: None,
            guard,
            pending,
            headers_only,
        }
    }

    fn ready(response: ServiceResponse<MetricsBody<B>>) -> Self {
        Self {
            future: None,
            ready: Some(Box::new(response)),
            guard: None,
            pending: None,
            headers_only: false,
        }
    }
}

impl<F, B> Future for MetricsResponse<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<MetricsBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(response) = this.ready.take() {
            return Poll::Ready(Ok(*response));
        }
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Pending;
        };
        let response = match std::task::ready!(future.poll(cx)) {
            Ok(response) => response,
            Err(error) => {
                failed(this.guard.take(), this.pending.take(), &error);
                return Poll::Ready(Err(error));
            }
        };
        let mut guard = this.guard.take();
        if let (Some(guard), Some(pending)) = (guard.as_mut(), this.pending.take()) {
            pending.settle(guard, Some(response.request()));
        }
        RequestGuard::headers_ready(&mut guard, response.status().as_u16(), *this.headers_only);
        Poll::Ready(Ok(
            response.map_body(|_, body| MetricsBody::new(body, guard))
        ))
    }
}

/// The inner service failed: the error becomes a response with its `ResponseError`'s
/// status, which is what the request is recorded with.
#[cold]
fn failed(guard: Option<RequestGuard>, pending: Option<Box<Pending>>, error: &actix_web::Error) {
    if let Some(mut guard) = guard {
        if let Some(pending) = pending {
            pending.settle(&mut guard, None);
        }
        guard.response(error.as_response_error().status_code().as_u16());
        guard.finish();
    }
}
