//! [`MetricsMiddleware`]: the service [`Metrics`] wraps around the app.

use std::fmt;
use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use vitals_core::http::RequestGuard;

use crate::body::MetricsBody;
use crate::builder::{Metrics, Shared};
use crate::patterns::{Patterns, Pending};
use crate::response::MetricsResponse;

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
    pub(crate) service: S,
    pub(crate) shared: Arc<Shared>,
    /// Recent answers of `match_pattern()`, and patterns to guess from, per worker.
    pub(crate) patterns: Rc<Patterns>,
}

impl<S> fmt::Debug for MetricsMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsMiddleware").finish_non_exhaustive()
    }
}

impl<S> MetricsMiddleware<S> {
    /// The endpoint's response, when this request is for it.
    fn endpoint(&self, request: &ServiceRequest) -> Option<HttpResponse<Bytes>> {
        if !self.shared.state.is_endpoint(request.path()) {
            return None;
        }
        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        let wire = self.shared.state.answer(
            request.path(),
            request.method().as_str(),
            header(header::ACCEPT),
            header(header::ACCEPT_ENCODING),
            || {
                self.shared
                    .access
                    .as_ref()
                    .is_none_or(|access| access(request.request()))
            },
        )?;
        let status = StatusCode::from_u16(wire.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::with_body(status, Bytes::from(wire.body));
        let headers = response.headers_mut();
        for (name, value) in &wire.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        Some(response)
    }

    /// Starts recording `request`, with its route's answer to check after routing when it
    /// did not come from the tables of known paths.
    fn start(&self, request: &ServiceRequest) -> (Option<RequestGuard>, Option<Box<Pending>>) {
        let Some(metrics) = self.shared.state.metrics() else {
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
        // The W3C Trace Context header, whose ids the request's exemplars carry.
        guard.traceparent(request.headers().get("traceparent").map(|v| v.as_bytes()));
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
            let guard = if self.shared.state.count_endpoint() {
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
            self.shared.state.headers_only(),
        )
    }
}
