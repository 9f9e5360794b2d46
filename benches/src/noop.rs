//! A layer that does nothing but what every body-watching middleware must do: wrap the
//! service, its future and the response body. It is the floor under any metrics layer that
//! times requests until the body ends, so the benchmarks can tell the cost of being a layer
//! at all from the cost of recording.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// Wraps a service in [`Noop`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopLayer;

impl<S> Layer<S> for NoopLayer {
    type Service = Noop<S>;

    fn layer(&self, inner: S) -> Noop<S> {
        Noop { inner }
    }
}

/// Forwards requests, and wraps futures and bodies, recording nothing.
#[derive(Debug, Clone)]
pub struct Noop<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for Noop<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<NoopBody<R>>;
    type Error = S::Error;
    type Future = NoopFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        NoopFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The future of [`Noop`].
    #[derive(Debug)]
    pub struct NoopFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, R, E> std::future::Future for NoopFuture<F>
where
    F: std::future::Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<NoopBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(response.map(|inner| NoopBody { inner })))
    }
}

pin_project! {
    /// The body of [`Noop`].
    #[derive(Debug)]
    pub struct NoopBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B: Body> Body for NoopBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The same floor for actix-web: a middleware that wraps the service, its future and the
/// response body, and records nothing. `App::new().wrap(NoopMiddleware)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopMiddleware;

impl<S, B> actix_web::dev::Transform<S, actix_web::dev::ServiceRequest> for NoopMiddleware
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    type Response = actix_web::dev::ServiceResponse<NoopMessageBody<B>>;
    type Error = actix_web::Error;
    type Transform = NoopActix<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<NoopActix<S>, ()>>;

    fn new_transform(&self, inner: S) -> Self::Future {
        std::future::ready(Ok(NoopActix { inner }))
    }
}

/// The service of [`NoopMiddleware`].
#[derive(Debug)]
pub struct NoopActix<S> {
    inner: S,
}

impl<S, B> actix_web::dev::Service<actix_web::dev::ServiceRequest> for NoopActix<S>
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    type Response = actix_web::dev::ServiceResponse<NoopMessageBody<B>>;
    type Error = actix_web::Error;
    type Future = NoopActixFuture<S::Future>;

    actix_web::dev::forward_ready!(inner);

    fn call(&self, request: actix_web::dev::ServiceRequest) -> Self::Future {
        NoopActixFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The future of [`NoopActix`].
    #[derive(Debug)]
    pub struct NoopActixFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B> std::future::Future for NoopActixFuture<F>
where
    F: std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Result<actix_web::dev::ServiceResponse<NoopMessageBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(response.map_body(|_, inner| NoopMessageBody { inner })))
    }
}

pin_project! {
    /// The response body of [`NoopActix`].
    #[derive(Debug)]
    pub struct NoopMessageBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B: actix_web::body::MessageBody> actix_web::body::MessageBody for NoopMessageBody<B> {
    type Error = B::Error;

    fn size(&self) -> actix_web::body::BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, B::Error>>> {
        self.project().inner.poll_next(cx)
    }
}
