//! [`ResponseFuture`]: hands the request guard to the response body.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use metrics_core::http::RequestGuard;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

pin_project! {
    /// The response future of [`Metrics`](crate::Metrics).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Metered {
            #[pin]
            future: F,
            // Dropped with the future if the client goes away first: recorded as 499.
            guard: Option<RequestGuard>,
            headers_only: bool,
        },
        Endpoint {
            response: Option<Response<Full<Bytes>>>,
            guard: Option<RequestGuard>,
        },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn metered(future: F, guard: Option<RequestGuard>, headers_only: bool) -> Self {
        Self {
            kind: Kind::Metered {
                future,
                guard,
                headers_only,
            },
        }
    }

    pub(crate) fn endpoint(response: Response<Full<Bytes>>, guard: Option<RequestGuard>) -> Self {
        Self {
            kind: Kind::Endpoint {
                response: Some(response),
                guard,
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Metered {
                future,
                guard,
                headers_only,
            } => {
                let result = ready!(future.poll(cx));
                let mut guard = guard.take();
                match result {
                    Ok(response) => {
                        let status = response.status();
                        if let Some(guard) = guard.as_mut() {
                            guard.response(status.as_u16());
                            if status == StatusCode::SWITCHING_PROTOCOLS {
                                guard.upgraded();
                            }
                        }
                        if *headers_only {
                            if let Some(guard) = guard.take() {
                                guard.finish();
                            }
                        }
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
            KindProj::Endpoint { response, guard } => {
                let response = response.take().unwrap_or_default();
                let guard = guard.take();
                Poll::Ready(Ok(response.map(|body| ResponseBody::endpoint(body, guard))))
            }
        }
    }
}
