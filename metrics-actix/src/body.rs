//! [`MetricsBody`]: carries the request guard until the body ends or is dropped.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use pin_project_lite::pin_project;
use vitals_core::http::RequestGuard;

pin_project! {
    /// A response body timed until it ends or is dropped (a client that went away mid-body):
    /// the app's body, or the metrics endpoint's.
    pub struct MetricsBody<B> {
        #[pin]
        body: Body<B>,
        guard: Option<RequestGuard>,
    }
}

pin_project! {
    /// One type for both bodies the middleware answers with, so that neither is wrapped in an
    /// `EitherBody` (another match per chunk, and a wider response to move).
    #[project = BodyProj]
    enum Body<B> {
        App { #[pin] body: B },
        /// The metrics endpoint's, taken at the first poll.
        Endpoint { body: Option<Bytes> },
    }
}

impl<B> std::fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsBody").finish_non_exhaustive()
    }
}

impl<B> MetricsBody<B> {
    pub(crate) fn new(body: B, guard: Option<RequestGuard>) -> Self {
        Self {
            body: Body::App { body },
            guard,
        }
    }

    /// The metrics endpoint's answer.
    pub(crate) fn endpoint(body: Bytes, guard: Option<RequestGuard>) -> Self {
        Self {
            body: Body::Endpoint { body: Some(body) },
            guard,
        }
    }
}

impl<B: MessageBody> MessageBody for MetricsBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        match &self.body {
            Body::App { body } => body.size(),
            Body::Endpoint { body } => {
                BodySize::Sized(body.as_ref().map_or(0, |body| body.len() as u64))
            }
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let chunk = match this.body.project() {
            BodyProj::App { body } => ready!(body.poll_next(cx)),
            BodyProj::Endpoint { body } => body.take().filter(|b| !b.is_empty()).map(Ok),
        };
        match &chunk {
            Some(Ok(bytes)) => RequestGuard::body_chunk(this.guard, bytes.len()),
            None | Some(Err(_)) => RequestGuard::body_ended(this.guard),
        }
        Poll::Ready(chunk)
    }
}

/// Counts the request payload's real bytes as the handler reads them, when body sizes are
/// recorded. The payload is wrapped into a boxed stream, which every extractor reads the same.
#[inline]
pub(crate) fn count_request_payload(
    request: &mut actix_web::dev::ServiceRequest,
    guard: &mut vitals_core::http::RequestGuard,
) {
    if guard.records_request_size() {
        wrap_payload(request, guard);
    }
}

fn wrap_payload(
    request: &mut actix_web::dev::ServiceRequest,
    guard: &mut vitals_core::http::RequestGuard,
) {
    use actix_web::dev::Payload;
    use actix_web::HttpMessage as _;

    let payload = request.take_payload();
    if matches!(payload, Payload::None) {
        request.set_payload(payload);
        return;
    }
    let counting = CountingPayload {
        inner: payload,
        counter: guard.count_request_body(),
    };
    let stream: Pin<
        Box<dyn futures_core::Stream<Item = Result<Bytes, actix_web::error::PayloadError>>>,
    > = Box::pin(counting);
    request.set_payload(Payload::from(stream));
}

pin_project! {
    /// A request payload that counts its bytes.
    struct CountingPayload {
        #[pin]
        inner: actix_web::dev::Payload,
        counter: vitals_core::http::BodyCounter,
    }
}

impl futures_core::Stream for CountingPayload {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(bytes)) => this.counter.add(bytes.len() as u64),
            // The whole payload was read: its size is what was counted.
            None => this.counter.end(),
            Some(Err(_)) => {}
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
