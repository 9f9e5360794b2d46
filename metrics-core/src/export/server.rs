//! A standalone `/metrics` server, for programs that are not web servers (workers, CLIs, batch
//! consumers): tokio and hyper, behind the `exporter` feature.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::encoding::openmetrics::EncodeOptions;
use crate::http::endpoint_response_with;
use crate::Registry;

/// The port OpenTelemetry's Prometheus exporters use by default.
pub const DEFAULT_PORT: u16 = 9464;
/// How long [`RunningExporter::shutdown`] waits for scrapes in progress, and a connection past
/// its age for its answer in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The default time a client has to send a request's headers, or to start the next request
/// on a kept-alive connection.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// The default age at which a connection is closed (after the answer in progress).
pub const DEFAULT_CONNECTION_MAX_AGE: Duration = Duration::from_secs(120);
/// How many scrapes encode at once: each holds its exposition (and its gzip copy) while it
/// is written, so this bounds the exporter's memory to a few expositions whatever the number
/// of clients.
const CONCURRENT_ENCODES: usize = 4;

/// Serves a registry's metrics over HTTP: `GET /metrics` in the format the client's `Accept`
/// header asks for ([`Format::from_accept`](crate::encoding::Format::from_accept)), gzipped when its `Accept-Encoding` allows,
/// optionally behind a bearer token or basic auth.
///
/// It binds `127.0.0.1:9464` unless told otherwise: exposing metrics beyond the machine is a
/// decision to make explicitly.
///
/// It is bounded against slow and numerous clients: a client has
/// [`header_read_timeout`](Self::header_read_timeout) (10 s) to send its request's headers,
/// or to start its next request on a kept-alive connection; at most
/// [`max_connections`](Self::max_connections) (64) are served at once, and further clients
/// wait in the listen backlog; a connection is closed at
/// [`connection_max_age`](Self::connection_max_age) (2 min), after the answer in progress,
/// which bounds slow readers. Encoding runs on tokio's blocking threads, at most 4 scrapes at
/// once, so a large registry neither stalls the runtime's other tasks nor holds more than four
/// expositions in memory.
///
/// ```no_run
/// use vitals_core::{exporter::Exporter, Registry};
///
/// # async fn run() -> std::io::Result<()> {
/// let registry = Registry::new();
/// let jobs = registry.counter("jobs", "Jobs processed.").register().expect("valid name");
/// let server = Exporter::new(&registry)
///     .address(([0, 0, 0, 0], 9464).into())
///     .bearer_token("s3cret")
///     .start()
///     .await?;
/// jobs.inc();
/// // ... work ...
/// server.shutdown().await; // finishes scrapes in progress, then stops
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "nothing is served until `start` is called"]
pub struct Exporter {
    registry: Registry,
    address: SocketAddr,
    path: String,
    authorization: Option<String>,
    openmetrics: EncodeOptions,
    live: bool,
    header_read_timeout: Duration,
    max_connections: usize,
    connection_max_age: Duration,
}

impl Exporter {
    /// An exporter of `registry` (a cheap handle: the exporter sees later registrations).
    pub fn new(registry: &Registry) -> Self {
        Self {
            registry: registry.clone(),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            path: "/metrics".to_owned(),
            authorization: None,
            openmetrics: EncodeOptions::default(),
            live: false,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connection_max_age: DEFAULT_CONNECTION_MAX_AGE,
        }
    }

    /// Sets how long a client has to send a request's headers, or to start its next request
    /// on a kept-alive connection, before the connection is closed. Defaults to
    /// [`DEFAULT_HEADER_READ_TIMEOUT`] (10 s).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets how many connections are served at once (at least 1); more clients wait in the
    /// listen backlog until one closes. Defaults to [`DEFAULT_MAX_CONNECTIONS`] (64).
    pub fn max_connections(mut self, max: usize) -> Self {
        // Shutdown waits for every permit at once, which `acquire_many` counts in a u32.
        let most = Semaphore::MAX_PERMITS.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
        self.max_connections = max.clamp(1, most);
        self
    }

    /// Sets the age at which a connection is closed, once its answer in progress is written
    /// (or 5 s later, for a client that does not read it). Defaults to
    /// [`DEFAULT_CONNECTION_MAX_AGE`] (2 min).
    pub fn connection_max_age(mut self, age: Duration) -> Self {
        self.connection_max_age = age;
        self
    }

    /// Sets the address to listen on; port 0 picks a free one (see
    /// [`RunningExporter::local_addr`]). Defaults to `127.0.0.1:9464`.
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    /// Sets the path that serves the metrics. Defaults to `/metrics`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Requires `Authorization: Bearer <token>`. Defaults to no authentication.
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        self.authorization = Some(format!("Bearer {}", token.as_ref()));
        self
    }

    /// Requires HTTP basic authentication with this user and password. Defaults to no
    /// authentication.
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let credentials = format!("{}:{}", user.as_ref(), password.as_ref());
        self.authorization = Some(format!(
            "Basic {}",
            crate::util::base64::encode(credentials.as_bytes(), crate::util::base64::STANDARD)
        ));
        self
    }

    /// Whether OpenMetrics answers carry `_created` samples (see
    /// [`openmetrics`](crate::encoding::openmetrics)). Defaults to off.
    pub fn created_samples(mut self, on: bool) -> Self {
        self.openmetrics = self.openmetrics.created_samples(on);
        self
    }

    /// Whether the live page is served below the path: `/metrics/live` and
    /// `/metrics/live.json` (see [`live`](crate::http::live)), behind the same
    /// authorization. Turns the registry's windowed statistics on and starts their ticker
    /// when the server starts. Defaults to off.
    pub fn live(mut self, on: bool) -> Self {
        self.live = on;
        self
    }

    /// Binds the address and serves in a task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The error of binding the address (in use, not permitted, ...), or, with the live
    /// page on, of starting the windows' ticker thread.
    pub async fn start(self) -> std::io::Result<RunningExporter> {
        if self.live {
            crate::http::live::enable(&self.registry).map_err(std::io::Error::other)?;
        }
        let listener = TcpListener::bind(self.address).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let config = Arc::new(self);
        let task = tokio::spawn(serve(listener, config, stopped));
        Ok(RunningExporter {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running [`Exporter`]. Dropping it stops the server; [`shutdown`](Self::shutdown) also
/// waits for scrapes in progress to finish.
#[derive(Debug)]
pub struct RunningExporter {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningExporter {
    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets scrapes in progress finish (for at most 5 seconds),
    /// then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningExporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(listener: TcpListener, config: Arc<Exporter>, mut stopped: oneshot::Receiver<()>) {
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let encoders = Arc::new(Semaphore::new(CONCURRENT_ENCODES));
    let (stopping, stop_signal) = watch::channel(false);
    loop {
        // A connection is accepted only when it can be served: at the cap, clients wait in
        // the listen backlog rather than in memory.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit,
            _ = &mut stopped => break,
        };
        // The semaphore is never closed; an error would only mean there is nothing to serve.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // A failed accept (out of descriptors, a reset before accept) is the client's or
            // the moment's problem, not a reason to stop serving; pause to avoid spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = serve_connection(
            stream,
            Arc::clone(&config),
            Arc::clone(&encoders),
            stop_signal.clone(),
        );
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a permit until it is done: all are back when all are closed.
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX); // clamped to fit
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(all)).await;
}

/// Serves one connection until the client closes it, it idles or stalls past the header
/// timeout, it reaches its age, or the server stops; in the last two cases the answer in
/// progress is finished first, for at most [`SHUTDOWN_GRACE`].
async fn serve_connection(
    stream: TcpStream,
    config: Arc<Exporter>,
    encoders: Arc<Semaphore>,
    mut stop_signal: watch::Receiver<bool>,
) {
    let (age, header_timeout) = (config.connection_max_age, config.header_read_timeout);
    let service = hyper::service::service_fn(move |request| {
        let config = Arc::clone(&config);
        let encoders = Arc::clone(&encoders);
        async move { Ok::<_, Infallible>(respond_off_runtime(config, encoders, request).await) }
    });
    let mut connection = pin!(hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service));
    // A client that goes away mid-scrape, or stalls, ends its connection with an error:
    // nothing to report, nothing lost.
    tokio::select! {
        _ = connection.as_mut() => return,
        () = tokio::time::sleep(age) => {}
        _ = stop_signal.wait_for(|stopping| *stopping) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
}

/// Answers on tokio's blocking threads, at most [`CONCURRENT_ENCODES`] at once: encoding a
/// large registry takes milliseconds that the runtime's workers owe to other tasks.
async fn respond_off_runtime(
    config: Arc<Exporter>,
    encoders: Arc<Semaphore>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let Ok(_encoding) = encoders.acquire_owned().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    // The body is not needed: only the head moves to the blocking thread.
    let (head, _) = request.into_parts();
    let request = Request::from_parts(head, ());
    tokio::task::spawn_blocking(move || respond(&config, &request))
        .await
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"))
}

fn respond(config: &Exporter, request: &Request<()>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let live = crate::http::live::LiveRequest::of(&config.path, path).filter(|_| config.live);
    if path != config.path && live.is_none() {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if let Some(expected) = &config.authorization {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .map_or(&[][..], HeaderValue::as_bytes);
        if !authorized(given, expected) {
            let scheme = if expected.starts_with("Basic") {
                "Basic realm=\"metrics\""
            } else {
                "Bearer"
            };
            let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
            return response;
        }
    }
    let header_str = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    // Methods, format negotiation and HEAD are answered as in every adapter.
    let answer = match live {
        Some(live) => {
            crate::http::live::response(&config.registry, live, request.method().as_str(), true)
        }
        None => endpoint_response_with(
            &config.registry,
            request.method().as_str(),
            header_str(header::ACCEPT),
            true,
            Ok(()),
            config.openmetrics,
        ),
    };
    let wire = answer.into_wire(header_str(header::ACCEPT_ENCODING));
    let mut response = Response::new(Full::new(Bytes::from(wire.body)));
    *response.status_mut() =
        StatusCode::from_u16(wire.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in wire.headers {
        if let Ok(value) = HeaderValue::try_from(&*value) {
            headers.insert(header::HeaderName::from_static(name), value);
        }
    }
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether an `Authorization` value matches the expected `<scheme> <credentials>`: the scheme
/// compared without regard to case (RFC 9110 §11.1: `bearer` is `Bearer`), the credentials
/// exactly and in constant time.
fn authorized(given: &[u8], expected: &str) -> bool {
    let Some((scheme, credentials)) = expected.split_once(' ') else {
        return constant_time_eq(given, expected.as_bytes());
    };
    let Some(space) = given.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (given_scheme, given_credentials) = (&given[..space], &given[space + 1..]);
    given_scheme.eq_ignore_ascii_case(scheme.as_bytes())
        & constant_time_eq(given_credentials, credentials.as_bytes())
}

/// Compares without stopping at the first difference, so that timing does not reveal how much
/// of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, &byte) in b.iter().enumerate() {
        difference |= usize::from(a.get(i).copied().unwrap_or(!byte) ^ byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::accepts_gzip;

    #[test]
    fn gzip_is_accepted_only_with_a_positive_q() {
        assert!(accepts_gzip(Some("gzip, deflate")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn the_auth_scheme_is_case_insensitive_and_the_credentials_are_not() {
        assert!(authorized(b"Bearer abc", "Bearer abc"));
        assert!(authorized(b"bearer abc", "Bearer abc"));
        assert!(authorized(b"BASIC dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"));
        assert!(!authorized(b"bearer ABC", "Bearer abc"));
        assert!(!authorized(b"Bearer", "Bearer abc"));
        assert!(!authorized(b"Basic abc", "Bearer abc"));
        assert!(!authorized(b"", "Bearer abc"));
    }

    #[test]
    fn the_connection_cap_stays_one_that_shutdown_can_wait_for_at_once() {
        let huge = Exporter::new(&Registry::new()).max_connections(usize::MAX);
        assert!(u32::try_from(huge.max_connections).is_ok());
        let none = Exporter::new(&Registry::new()).max_connections(0);
        assert_eq!(none.max_connections, 1);
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abcd", b"Bearer abc"));
        assert!(!constant_time_eq(b"", b"Bearer abc"));
    }
}
