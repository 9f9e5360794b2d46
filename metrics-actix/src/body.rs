//! [`MetricsBody`]: carries the request guard until the body ends or is dropped.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use metrics_core::http::RequestGuard;
use pin_project_lite::pin_project;

pin_project! {
    /// A response body timed until it ends or is dropped (a client that went away mid-body).
    pub struct MetricsBody<B> {
        #[pin]
        body: B,
        guard: Option<RequestGuard>,
    }
}

impl<B> std::fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsBody").finish_non_exhaustive()
    }
}

impl<B> MetricsBody<B> {
    pub(crate) fn new(body: B, guard: Option<RequestGuard>) -> Self {
        Self { body, guard }
    }
}

impl<B: MessageBody> MessageBody for MetricsBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let chunk = ready!(this.body.poll_next(cx));
        match &chunk {
            Some(Ok(bytes)) => {
                if let Some(guard) = this.guard.as_mut() {
                    guard.add_response_bytes(bytes.len() as u64);
                }
            }
            None | Some(Err(_)) => {
                if let Some(guard) = this.guard.take() {
                    guard.finish();
                }
            }
        }
        Poll::Ready(chunk)
    }
}
