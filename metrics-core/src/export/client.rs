//! The HTTP client behind the Pushgateway and OTLP exporters: plain HTTP/1.1 over tokio and
//! hyper, one connection per request, a timeout on the whole exchange.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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
    /// The server could not be reached.
    Connect(std::io::Error),
    /// The HTTP exchange failed after connecting.
    Http(hyper::Error),
    /// The server did not answer within the timeout.
    Timeout(Duration),
    /// The server answered with an error status.
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// What the server said.
        body: String,
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
            Self::Connect(e) => write!(f, "cannot reach the server: {e}"),
            Self::Http(e) => write!(f, "HTTP exchange failed: {e}"),
            Self::Timeout(d) => write!(f, "the server did not answer within {d:?}"),
            Self::Rejected { status, body } => {
                write!(f, "the server answered {status}: {}", body.trim())
            }
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

/// Where to send: `host:port`, a base path, a timeout and credentials.
#[derive(Debug, Clone)]
pub(crate) struct HttpTarget {
    /// `host:port`, for connecting and for the `Host` header.
    pub(crate) authority: String,
    /// The base path, without a trailing `/`.
    pub(crate) base_path: String,
    pub(crate) timeout: Duration,
    pub(crate) authorization: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl HttpTarget {
    /// A target at `url` (`http://host:port`, optionally with a base path).
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] when the URL is not `http://host[:port][/path]`. HTTPS is not
    /// supported (no TLS stack is built in); reach a TLS gateway through a local proxy.
    pub(crate) fn new(url: &str) -> Result<Self, PushError> {
        let invalid = |reason| PushError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(invalid(
                "https is not supported; use http or a local TLS proxy",
            ));
        } else {
            return Err(invalid("it must start with http://"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid("it needs a host, and no user info"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else if authority.contains(':') && !authority.ends_with(']') {
            return Err(invalid("its port is not a number"));
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            base_path: format!("/{}", path.trim_matches('/'))
                .trim_end_matches('/')
                .to_owned(),
            timeout: Duration::from_secs(10),
            authorization: None,
            headers: Vec::new(),
        })
    }

    pub(crate) fn bearer_token(&mut self, token: &str) {
        self.authorization = Some(format!("Bearer {token}"));
    }

    pub(crate) fn basic_auth(&mut self, user: &str, password: &str) {
        let credentials = format!("{user}:{password}");
        self.authorization = Some(format!(
            "Basic {}",
            crate::util::base64::encode(credentials.as_bytes(), crate::util::base64::STANDARD)
        ));
    }

    /// Sends `body` to `path` (below the base path) and returns the answer's body on success.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<Bytes, PushError> {
        let path = format!("{}{path}", self.base_path);
        let exchange = async {
            let stream = TcpStream::connect(&self.authority)
                .await
                .map_err(PushError::Connect)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(PushError::Http)?;
            let connection = tokio::spawn(connection);
            let mut request = Request::new(Full::new(Bytes::from(body)));
            *request.method_mut() = method;
            *request.uri_mut() = path.parse().map_err(|_| PushError::InvalidUrl {
                url: path.clone(),
                reason: "the request path is not a valid URI",
            })?;
            let headers = request.headers_mut();
            if let Ok(host) = HeaderValue::from_str(&self.authority) {
                headers.insert(header::HOST, host);
            }
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Some(authorization) = self
                .authorization
                .as_deref()
                .and_then(|a| HeaderValue::from_str(a).ok())
            {
                headers.insert(header::AUTHORIZATION, authorization);
            }
            for (name, value) in &self.headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    headers.append(name, value);
                }
            }
            let response = sender
                .send_request(request)
                .await
                .map_err(PushError::Http)?;
            let status = response.status();
            let answer = response
                .into_body()
                .collect()
                .await
                .map_err(PushError::Http)?
                .to_bytes();
            connection.abort();
            if status.is_success() {
                Ok(answer)
            } else {
                Err(PushError::Rejected {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&answer).into_owned(),
                })
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(PushError::Timeout(self.timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalised() {
        let t = HttpTarget::new("http://127.0.0.1:9091").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("127.0.0.1:9091", "")
        );
        let t = HttpTarget::new("http://gateway/prefix/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("gateway:80", "/prefix")
        );
        for bad in [
            "127.0.0.1:9091",
            "https://x",
            "http://",
            "http://u:p@x",
            "http://x:port",
        ] {
            let err = HttpTarget::new(bad).unwrap_err();
            assert!(matches!(err, PushError::InvalidUrl { .. }), "{bad}: {err}");
        }
    }
}
