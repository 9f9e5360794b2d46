//! [`ResponseBody`]: carries the request guard until the body ends or is dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use vitals_core::http::RequestGuard;

pin_project! {
    /// The response body of [`Metrics`](crate::Metrics): the inner body, timed until it ends
    /// or is dropped, or the metrics endpoint's body.
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
        // The request is recorded when the body ends, or when this is dropped (a client that
        // went away mid-body).
        guard: Option<RequestGuard>,
    }
}

pin_project! {
    #[project = BodyProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Endpoint { #[pin] body: Full<Bytes> },
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn metered(body: B, guard: Option<RequestGuard>) -> Self {
        Self {
            kind: BodyKind::Inner { body },
            guard,
        }
    }

    pub(crate) fn endpoint(body: Full<Bytes>, guard: Option<RequestGuard>) -> Self {
        Self {
            kind: BodyKind::Endpoint { body },
            guard,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = match this.kind.project() {
            BodyProj::Inner { body } => ready!(body.poll_frame(cx)),
            BodyProj::Endpoint { body } => {
                ready!(body.poll_frame(cx)).map(|frame| frame.map_err(|e: Infallible| match e {}))
            }
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    RequestGuard::body_chunk(this.guard, data.len());
                }
            }
            // The end, or an error that ends the body: the request is complete.
            None | Some(Err(_)) => RequestGuard::body_ended(this.guard),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Endpoint { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Endpoint { body } => body.size_hint(),
        }
    }
}

#[cfg(feature = "axum")]
pub(crate) use counting::count_request_body;

#[cfg(feature = "axum")]
mod counting {
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use bytes::Bytes;
    use http::Request;
    use http_body::{Body, Frame, SizeHint};
    use pin_project_lite::pin_project;
    use vitals_core::http::{BodyCounter, RequestGuard};

    pin_project! {
        /// A request body that counts its bytes as the service reads them.
        struct CountingBody {
            #[pin]
            inner: axum::body::Body,
            counter: BodyCounter,
        }
    }

    impl Body for CountingBody {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            let this = self.project();
            let frame = ready!(this.inner.poll_frame(cx));
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.counter.add(data.len() as u64);
                    }
                }
                // The whole body was read: its size is what was counted.
                None => this.counter.end(),
                Some(Err(_)) => {}
            }
            Poll::Ready(frame)
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }

    /// Counts the request body's real bytes, for a guard that records body sizes, when the
    /// body is axum's `Body` (as under `Router::layer`). The request keeps its type: the body is
    /// wrapped and boxed back into a `Body`. Any other body type is measured by its declared
    /// length only.
    pub(crate) fn count_request_body<B: 'static>(
        request: &mut Request<B>,
        guard: &mut RequestGuard,
    ) {
        let body: &mut dyn std::any::Any = request.body_mut();
        if let Some(body) = body.downcast_mut::<axum::body::Body>() {
            if !body.is_end_stream() {
                let inner = std::mem::take(body);
                *body = axum::body::Body::new(CountingBody {
                    inner,
                    counter: guard.count_request_body(),
                });
            }
        }
    }
}
