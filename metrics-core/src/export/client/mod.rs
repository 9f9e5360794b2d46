//! The HTTP client behind the Pushgateway and OTLP exporters: HTTP/1.1 over tokio and hyper,
//! `https://` with the `tls` feature, one connection per attempt, a timeout on each attempt,
//! retries with backoff, and gzip request bodies on request.

mod retry;
#[cfg(feature = "tls")]
mod tls;
mod url;

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use retry::Retry;
use url::{Endpoint, Scheme};

/// The builder methods that the Pushgateway client and the OTLP exporter share, for a type
/// whose `target` field is an [`HttpTarget`]: the timeout, credentials, headers, gzip, retries
/// and TLS roots.
macro_rules! target_options {
    () => {
        /// Sets how long one attempt may take, connecting included. Defaults to 10 seconds.
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.target.timeout = timeout;
            self
        }

        /// Sends `Authorization: Bearer <token>`.
        ///
        /// # Errors
        ///
        /// [`PushError::InvalidHeader`] when the token holds a newline or control character.
        pub fn bearer_token(mut self, token: impl AsRef<str>) -> Result<Self, PushError> {
            self.target.bearer_token(token.as_ref())?;
            Ok(self)
        }

        /// Sends HTTP basic authentication.
        pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
            self.target.basic_auth(user.as_ref(), password.as_ref());
            self
        }

        /// Adds a header to every request (an API key, a tenant). Defaults to none.
        ///
        /// # Errors
        ///
        /// [`PushError::InvalidHeader`] when the name or value cannot be sent (a newline in
        /// the value, say): a request is never sent wrong.
        pub fn header(
            mut self,
            name: impl AsRef<str>,
            value: impl AsRef<str>,
        ) -> Result<Self, PushError> {
            self.target.header(name.as_ref(), value.as_ref())?;
            Ok(self)
        }

        /// Gzips request bodies (`Content-Encoding: gzip`), which Pushgateways and
        /// OpenTelemetry collectors accept. Defaults to off.
        pub fn gzip(mut self, on: bool) -> Self {
            self.target.gzip = on;
            self
        }

        /// Sets how a failed request is retried. Defaults to [`Retry::default`].
        pub fn retry(mut self, retry: Retry) -> Self {
            self.target.retry = retry;
            self
        }

        /// Also trusts the PEM certificates in `pem` (a private CA) for an `https://` URL.
        ///
        /// # Errors
        ///
        /// [`PushError::Tls`] when `pem` holds no valid certificate.
        #[cfg(feature = "tls")]
        pub fn root_certificates(mut self, pem: &[u8]) -> Result<Self, PushError> {
            self.target.root_certificates(pem)?;
            Ok(self)
        }
    };
}
pub(crate) use target_options;

/// The most of a server's answer that is read: enough for any error message or OTLP answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What went wrong sending metrics to a Pushgateway or an OTLP endpoint. Nothing recorded in
/// the registry is lost: the next push or export sends it all again.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// The URL cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A grouping label name is invalid, or the job name is empty (Pushgateway).
    InvalidGrouping {
        /// What is wrong.
        reason: String,
    },
    /// A header name or value (a bearer token included) cannot be sent: a newline, a
    /// character outside visible ASCII in a name.
    InvalidHeader {
        /// The header's name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// A configuration value (an `OTEL_*` variable) cannot be used.
    InvalidConfig {
        /// The setting.
        name: String,
        /// What is wrong, with the value.
        reason: String,
    },
    /// TLS failed: the server's certificate was refused, the handshake failed, a root
    /// certificate given could not be read, or `https://` was asked without the `tls` feature.
    /// Not retried.
    Tls(String),
    /// The server could not be reached.
    Connect(std::io::Error),
    /// The HTTP exchange failed after connecting.
    Http(hyper::Error),
    /// The server did not answer within the timeout.
    Timeout(Duration),
    /// The server answered with an error status (after any retries).
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// What the server said.
        body: String,
    },
    /// An OTLP collector accepted the request but rejected some of its points
    /// (`partial_success`); retrying would not change its mind.
    PartiallyRejected {
        /// The points rejected.
        rejected_points: i64,
        /// The collector's explanation.
        message: String,
    },
    /// Periodic exports were started outside a tokio runtime.
    NoRuntime,
    /// The periodic export task panicked, or its runtime shut down, before the final export.
    ExportTaskFailed,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { url, reason } => {
                write!(f, "invalid URL {url:?}: {reason}")
            }
            Self::InvalidGrouping { reason } => write!(f, "invalid grouping key: {reason}"),
            Self::InvalidHeader { name, reason } => write!(f, "invalid header {name:?}: {reason}"),
            Self::InvalidConfig { name, reason } => write!(f, "invalid {name}: {reason}"),
            Self::Tls(e) => write!(f, "TLS failed: {e}"),
            Self::Connect(e) => write!(f, "cannot reach the server: {e}"),
            Self::Http(e) => write!(f, "HTTP exchange failed: {e}"),
            Self::Timeout(d) => write!(f, "the server did not answer within {d:?}"),
            Self::Rejected { status, body } => {
                write!(f, "the server answered {status}: {}", body.trim())
            }
            Self::PartiallyRejected {
                rejected_points,
                message,
            } => write!(
                f,
                "the collector rejected {rejected_points} points: {}",
                message.trim()
            ),
            Self::NoRuntime => write!(f, "exports must start inside a tokio runtime"),
            Self::ExportTaskFailed => {
                write!(f, "the export task stopped before the final export")
            }
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Http(e) => Some(e),
            _ => None,
        }
    }
}

/// Where to send, and how: the endpoint, a timeout per attempt, retries, credentials,
/// headers, compression and TLS.
#[derive(Debug, Clone)]
pub(crate) struct HttpTarget {
    endpoint: Endpoint,
    pub(crate) timeout: Duration,
    pub(crate) retry: Retry,
    pub(crate) gzip: bool,
    authorization: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    #[cfg(feature = "tls")]
    tls: Option<tls::Tls>,
    #[cfg(feature = "tls")]
    extra_roots: Vec<Vec<u8>>,
}

impl HttpTarget {
    /// A target at `url` (`http[s]://host[:port][/path][?query]`).
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] when the URL would not give a correct request;
    /// [`PushError::Tls`] for `https://` without the `tls` feature.
    pub(crate) fn new(url: &str) -> Result<Self, PushError> {
        let endpoint = Endpoint::parse(url)?;
        #[cfg(not(feature = "tls"))]
        if endpoint.scheme == Scheme::Https {
            return Err(PushError::Tls(format!(
                "{url:?} is https, which needs vitals-core's `tls` feature"
            )));
        }
        Ok(Self {
            #[cfg(feature = "tls")]
            tls: (endpoint.scheme == Scheme::Https)
                .then(|| tls::Tls::new(&[]))
                .transpose()?,
            #[cfg(feature = "tls")]
            extra_roots: Vec::new(),
            endpoint,
            timeout: Duration::from_secs(10),
            retry: Retry::default(),
            gzip: false,
            authorization: None,
            headers: Vec::new(),
        })
    }

    #[cfg(feature = "tls")]
    fn configure_tls(&mut self) -> Result<(), PushError> {
        if self.endpoint.scheme == Scheme::Https {
            self.tls = Some(tls::Tls::new(&self.extra_roots)?);
        }
        Ok(())
    }

    /// Also trusts the PEM certificates in `pem` (a private CA) for `https://`.
    #[cfg(feature = "tls")]
    pub(crate) fn root_certificates(&mut self, pem: &[u8]) -> Result<(), PushError> {
        self.extra_roots.push(pem.to_vec());
        self.configure_tls()
    }

    pub(crate) fn bearer_token(&mut self, token: &str) -> Result<(), PushError> {
        self.authorization = Some(header_value("authorization", &format!("Bearer {token}"))?);
        Ok(())
    }

    pub(crate) fn basic_auth(&mut self, user: &str, password: &str) {
        let credentials = format!("{user}:{password}");
        let encoded =
            crate::util::base64::encode(credentials.as_bytes(), crate::util::base64::STANDARD);
        // Base64 is always a valid header value.
        self.authorization = HeaderValue::try_from(format!("Basic {encoded}")).ok();
    }

    /// The request target of `path`, as sent.
    #[cfg(all(test, feature = "otlp"))]
    pub(crate) fn request_target(&self, path: &str) -> String {
        self.endpoint.request_target(path)
    }

    /// `host:port`, as the `Host` header carries it.
    #[cfg(all(test, feature = "otlp"))]
    pub(crate) fn authority(&self) -> &str {
        &self.endpoint.authority
    }

    /// The added headers, as text.
    #[cfg(all(test, feature = "otlp"))]
    pub(crate) fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// Adds a header to every request.
    pub(crate) fn header(&mut self, name: &str, value: &str) -> Result<(), PushError> {
        let parsed =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| PushError::InvalidHeader {
                name: name.to_owned(),
                reason: "a header name is a token of visible ASCII, without spaces",
            })?;
        self.headers.push((parsed, header_value(name, value)?));
        Ok(())
    }

    /// Sends `body` to `path` (below the base path), retrying as [`Retry`] says, and returns
    /// the answer's body (at most 64 KiB of it) on success.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<Bytes, PushError> {
        let target = self.endpoint.request_target(path);
        let uri: Uri = target.parse().map_err(|_| PushError::InvalidUrl {
            url: target.clone(),
            reason: "the request path is not a valid URI",
        })?;
        let body = Bytes::from(if self.gzip { gzip(&body) } else { body });
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let (result, retry_after) = self
                .attempt(&method, &uri, content_type, body.clone())
                .await;
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            match self
                .retry
                .next_delay(&error, retry_after, attempt, started.elapsed())
            {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// One attempt, within the timeout; on failure, the server's `Retry-After` if it sent one.
    async fn attempt(
        &self,
        method: &Method,
        uri: &Uri,
        content_type: &'static str,
        body: Bytes,
    ) -> (Result<Bytes, PushError>, Option<Duration>) {
        let exchange = async {
            let stream = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
                .await
                .map_err(PushError::Connect)?;
            let request = self.request(method, uri, content_type, body);
            match self.endpoint.scheme {
                Scheme::Http => exchange(stream, request).await,
                #[cfg(feature = "tls")]
                Scheme::Https => match &self.tls {
                    Some(tls) => {
                        exchange(tls.connect(&self.endpoint.host, stream).await?, request).await
                    }
                    None => Err(PushError::Tls("no TLS configuration".to_owned())),
                },
                #[cfg(not(feature = "tls"))]
                Scheme::Https => Err(PushError::Tls("https needs the `tls` feature".to_owned())),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok((status, _, answer))) if status.is_success() => (Ok(answer), None),
            Ok(Ok((status, retry_after, answer))) => (
                Err(PushError::Rejected {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&answer).into_owned(),
                }),
                retry_after,
            ),
            Ok(Err(error)) => (Err(error), None),
            Err(_) => (Err(PushError::Timeout(self.timeout)), None),
        }
    }

    fn request(
        &self,
        method: &Method,
        uri: &Uri,
        content_type: &'static str,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&self.endpoint.authority) {
            headers.insert(header::HOST, host);
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if self.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        request
    }
}

/// A header value, or the error that names the header.
fn header_value(name: &str, value: &str) -> Result<HeaderValue, PushError> {
    HeaderValue::from_str(value).map_err(|_| PushError::InvalidHeader {
        name: name.to_owned(),
        reason: "a header value cannot hold a newline or other control character",
    })
}

/// One HTTP/1.1 exchange over `io`: the status, the `Retry-After` delay and the answer's
/// first 64 KiB.
async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, Option<Duration>, Bytes), PushError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(PushError::Http)?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(PushError::Http);
    let result = match response {
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry::parse_retry_after);
            let mut body = response.into_body();
            let mut answer = Vec::new();
            // Read to the end, or to the cap: a server cannot make the client hold more.
            while answer.len() < MAX_ANSWER_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            let room = MAX_ANSWER_BYTES - answer.len();
                            answer.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    Some(Err(e)) if status.is_success() => {
                        connection.abort();
                        return Err(PushError::Http(e));
                    }
                    // An error answer that breaks off is still an error answer.
                    Some(Err(_)) | None => break,
                }
            }
            Ok((status, retry_after, Bytes::from(answer)))
        }
        Err(e) => Err(e),
    };
    connection.abort();
    result
}

/// `body` gzipped (fast compression: a metrics body is compressed on every push).
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_cannot_be_sent_are_errors_when_they_are_given() {
        let mut target = HttpTarget::new("http://127.0.0.1:4318").unwrap();
        target.header("X-Org", "blue").unwrap();
        for (name, value) in [
            ("X-Org", "a\nb"),
            ("X-Org", "a\r\nInjected: yes"),
            ("X Org", "a"),
        ] {
            let err = target.header(name, value).unwrap_err();
            assert!(matches!(err, PushError::InvalidHeader { .. }), "{err}");
        }
        assert!(target.bearer_token("s3cret\nX: y").is_err());
        assert_eq!(target.headers.len(), 1, "nothing half-added");
    }

    #[test]
    fn gzip_bodies_decompress_to_what_was_encoded() {
        use std::io::Read as _;
        let body = b"metric_total 1\n".repeat(100);
        let compressed = gzip(&body);
        assert!(compressed.len() < body.len() / 4);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_without_the_tls_feature_says_which_feature() {
        let err = HttpTarget::new("https://collector.example").unwrap_err();
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }
}
