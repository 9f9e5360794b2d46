//! [`Metrics`]: the service a [`MetricsLayer`](crate::MetricsLayer) wraps around yours.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;
use vitals_core::http::{RequestGuard, RouteHint};
use vitals_core::route::UNMATCHED_ROUTE;

/// The W3C Trace Context header whose ids the request's exemplars carry.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::layer::{EndpointRequest, Shared};

/// Records every request through `S`; made by [`MetricsLayer`](crate::MetricsLayer).
pub struct Metrics<S> {
    inner: S,
    state: State,
}

/// The layer's state, and the route hint that a wrapped service and its clones share.
enum State {
    /// As [`Layer::layer`](tower_layer::Layer::layer) made it; the hint is made at the first
    /// clone. A served axum router clones each route's service for every request, so its
    /// requests all share the hint. A router that is not served through `with_state`
    /// re-applies its layers for every request and calls the result without cloning it: such
    /// a wrapper serves one request, and allocates nothing for it.
    Made {
        shared: Arc<Shared>,
        wrapped: OnceLock<Arc<Wrapped>>,
    },
    /// A clone, sharing its original's hint.
    Cloned(Arc<Wrapped>),
}

/// What one service the layer wrapped keeps: the layer's state, and a hint of where its
/// route's series are. `Router::layer` wraps each route's handler on its own, so all the
/// requests one wrapped service sees usually have one route (the hint checks that it is).
struct Wrapped {
    shared: Arc<Shared>,
    hint: RouteHint,
}

impl<S: fmt::Debug> fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for Metrics<S> {
    fn clone(&self) -> Self {
        let wrapped = match &self.state {
            State::Made { shared, wrapped } => wrapped.get_or_init(|| {
                Arc::new(Wrapped {
                    shared: Arc::clone(shared),
                    hint: RouteHint::new(),
                })
            }),
            State::Cloned(wrapped) => wrapped,
        };
        Self {
            inner: self.inner.clone(),
            state: State::Cloned(Arc::clone(wrapped)),
        }
    }
}

impl<S> Metrics<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            state: State::Made {
                shared,
                wrapped: OnceLock::new(),
            },
        }
    }

    fn shared(&self) -> &Shared {
        match &self.state {
            State::Made { shared, .. } => shared,
            State::Cloned(wrapped) => &wrapped.shared,
        }
    }

    /// The route hint, once this wrapper was cloned.
    fn hint(&self) -> Option<&RouteHint> {
        match &self.state {
            State::Made { wrapped, .. } => wrapped.get().map(|wrapped| &wrapped.hint),
            State::Cloned(wrapped) => Some(&wrapped.hint),
        }
    }

    /// The response of the metrics endpoint, when this request is for it.
    fn endpoint<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let shared = self.shared();
        if !shared.state.is_endpoint(request.uri().path()) {
            return None;
        }
        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        let wire = shared.state.answer(
            request.uri().path(),
            request.method().as_str(),
            header(header::ACCEPT),
            header(header::ACCEPT_ENCODING),
            || {
                shared.access.as_ref().is_none_or(|access| {
                    access.allow(&EndpointRequest {
                        method: request.method(),
                        uri: request.uri(),
                        headers: request.headers(),
                        extensions: request.extensions(),
                    })
                })
            },
        )?;
        Some(wire.into_http().map(|body| Full::new(Bytes::from(body))))
    }

    fn start<B>(&self, request: &Request<B>) -> Option<RequestGuard> {
        let metrics = self.shared().state.metrics()?;
        let method = request.method().as_str();
        let mut guard = self.with_route(request, |route, hint| match hint {
            Some(hint) => metrics.start_hinted(method, route, hint),
            None => metrics.start(method, route),
        });
        guard.declared_request_length(|| {
            request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
        });
        guard.traceparent(request.headers().get(TRACEPARENT).map(|v| v.as_bytes()));
        Some(guard)
    }

    /// Calls `f` with the route template (axum's `MatchedPath`, then the templater, else
    /// `None`: unmatched), and with this service's route hint, if it has one, unless the route
    /// came from the templater (whose routes vary from request to request). Borrowed, not
    /// copied: the recorder keeps the route in its series.
    fn with_route<B, T>(
        &self,
        request: &Request<B>,
        f: impl FnOnce(Option<&str>, Option<&RouteHint>) -> T,
    ) -> T {
        let hint = self.hint();
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
            return f(Some(matched.as_str()), hint);
        }
        let Some(templater) = self.shared().templater.as_ref() else {
            return f(None, hint);
        };
        let template = templater.template(request.uri().path());
        f(
            (template != UNMATCHED_ROUTE).then_some(template.as_str()),
            None,
        )
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: 'static,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if let Some(response) = self.endpoint(&request) {
            let guard = if self.shared().state.count_endpoint() {
                self.start(&request).map(|mut guard| {
                    guard.response(response.status().as_u16());
                    guard
                })
            } else {
                None
            };
            return ResponseFuture::endpoint(response, guard);
        }
        let mut guard = self.start(&request);
        watch_request_body(&mut request, guard.as_mut());
        ResponseFuture::metered(
            self.inner.call(request),
            guard,
            self.shared().state.headers_only(),
        )
    }
}

/// Counts the request body's real bytes as the service reads them, when this request's
/// body size is recorded and the body is one the layer can watch (axum's `Body`).
fn watch_request_body<B: 'static>(request: &mut Request<B>, guard: Option<&mut RequestGuard>) {
    #[cfg(feature = "axum")]
    if let Some(guard) = guard.filter(|g| g.records_request_size()) {
        crate::body::count_request_body(request, guard);
    }
    #[cfg(not(feature = "axum"))]
    let _ = (request, guard);
}
