//! [`MetricsResponse`]: the response future, which records when the response starts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use pin_project_lite::pin_project;
use vitals_core::http::RequestGuard;

use crate::body::MetricsBody;
use crate::patterns::Pending;

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
    pub(crate) fn pending(
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

    pub(crate) fn ready(response: ServiceResponse<MetricsBody<B>>) -> Self {
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
pub(crate) fn failed(
    guard: Option<RequestGuard>,
    pending: Option<Box<Pending>>,
    error: &actix_web::Error,
) {
    if let Some(mut guard) = guard {
        if let Some(pending) = pending {
            pending.settle(&mut guard, None);
        }
        guard.response(error.as_response_error().status_code().as_u16());
        guard.finish();
    }
}
