//! [`ResponseFuture`]: hands the request guard to the response body.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use pin_project_lite::pin_project;
use vitals_core::http::RequestGuard;

use crate::body::ResponseBody;

pin_project! {
    /// The response future of [`Metrics`](crate::Metrics).
    pub struct ResponseFuture<F> {
        // The inner service's future; `None` when the layer answered (the metrics endpoint).
        // A struct, not an enum of the two cases, so that `Metrics::call` writes the inner
        // future (often a few hundred bytes) in place instead of copying it twice.
        #[pin]
        future: Option<F>,
        // The endpoint's response, boxed: scrapes are rare.
        endpoint: Option<Box<Response<Full<Bytes>>>>,
        // Dropped with the future if the client goes away first: recorded as 499.
        guard: Option<RequestGuard>,
        headers_only: bool,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    /// The future of a request to the inner service.
    #[inline]
    pub(crate) fn metered(future: F, guard: Option<RequestGuard>, headers_only: bool) -> Self {
        Self {
            future: Some(future),
            endpoint: None,
            guard,
            headers_only,
        }
    }

    pub(crate) fn endpoint(response: Response<Full<Bytes>>, guard: Option<RequestGuard>) -> Self {
        Self {
            future: None,
            endpoint: Some(Box::new(response)),
            guard,
            headers_only: false,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            let response = this.endpoint.take().map(|r| *r).unwrap_or_default();
            let guard = this.guard.take();
            return Poll::Ready(Ok(response.map(|body| ResponseBody::endpoint(body, guard))));
        };
        let result = ready!(future.poll(cx));
        let mut guard = this.guard.take();
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                RequestGuard::headers_ready(&mut guard, status, *this.headers_only);
                Poll::Ready(Ok(response.map(|body| ResponseBody::metered(body, guard))))
            }
            Err(error) => {
                // The inner service failed without a response: a server error.
                if let Some(mut guard) = guard {
                    guard.response(StatusCode::INTERNAL_SERVER_ERROR.as_u16());
                    guard.finish();
                }
                Poll::Ready(Err(error))
            }
        }
    }
}
