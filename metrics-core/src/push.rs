//! A Pushgateway client for batch jobs, behind the `push` feature: push (replace a group),
//! push-add (replace metrics of the same names) and delete.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::encoding::text;
use crate::Registry;

/// What went wrong talking to a Pushgateway. Nothing recorded in the registry is lost: the
/// next push sends it all again.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// The gateway URL cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A grouping label name is invalid, or the job name is empty.
    InvalidGrouping {
        /// What is wrong.
        reason: String,
    },
    /// The gateway could not be reached.
    Connect(std::io::Error),
    /// The HTTP exchange failed after connecting.
    Http(hyper::Error),
    /// The gateway did not answer within the timeout.
    Timeout(Duration),
    /// The gateway answered with an error status.
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// What the gateway said.
        body: String,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { url, reason } => {
                write!(f, "invalid Pushgateway URL {url:?}: {reason}")
            }
            Self::InvalidGrouping { reason } => write!(f, "invalid grouping key: {reason}"),
            Self::Connect(e) => write!(f, "cannot reach the Pushgateway: {e}"),
            Self::Http(e) => write!(f, "HTTP exchange with the Pushgateway failed: {e}"),
            Self::Timeout(d) => write!(f, "the Pushgateway did not answer within {d:?}"),
            Self::Rejected { status, body } => {
                write!(f, "the Pushgateway answered {status}: {}", body.trim())
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

/// A Pushgateway, for metrics of jobs that end before a scrape would see them.
///
/// Pushes send the whole registry in the Prometheus text format. A group is the job name plus
/// the grouping labels; values that cannot stand in a URL path as they are (a `/`, an empty
/// value, spaces, non-ASCII) are sent base64-encoded, as the Pushgateway expects.
///
/// ```no_run
/// use metrics_core::{push::Pushgateway, Registry};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new();
/// let rows = registry.counter("rows_processed", "Rows processed.").register()?;
/// rows.inc_by(1_000);
///
/// let gateway = Pushgateway::new("http://127.0.0.1:9091")?;
/// gateway.push(&registry, "nightly_import", &[("shard", "eu-1")]).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Pushgateway {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    /// The base path, without a trailing `/`.
    base_path: String,
    timeout: Duration,
    authorization: Option<String>,
}

impl Pushgateway {
    /// A gateway at `url` (`http://host:port`, optionally with a base path).
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] when the URL is not `http://host[:port][/path]`. HTTPS is not
    /// supported (no TLS stack is built in); reach a TLS gateway through a local proxy.
    pub fn new(url: &str) -> Result<Self, PushError> {
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
        })
    }

    /// Sets how long one request may take, connecting included. Defaults to 10 seconds.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        self.authorization = Some(format!("Bearer {}", token.as_ref()));
        self
    }

    /// Sends HTTP basic authentication.
    #[must_use]
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let credentials = format!("{}:{}", user.as_ref(), password.as_ref());
        self.authorization = Some(format!(
            "Basic {}",
            crate::base64::encode(credentials.as_bytes(), crate::base64::STANDARD)
        ));
        self
    }

    /// Replaces every metric of the group with the registry's (HTTP `PUT`).
    ///
    /// # Errors
    ///
    /// Any [`PushError`]; the gateway's own answer is in [`PushError::Rejected`].
    pub async fn push(
        &self,
        registry: &Registry,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<(), PushError> {
        let body = text::encode(registry);
        self.send(Method::PUT, job, grouping, body).await
    }

    /// Replaces the group's metrics that have the same names as the registry's, and keeps the
    /// others (HTTP `POST`).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub async fn push_add(
        &self,
        registry: &Registry,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<(), PushError> {
        let body = text::encode(registry);
        self.send(Method::POST, job, grouping, body).await
    }

    /// Deletes every metric of the group (HTTP `DELETE`).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub async fn delete(&self, job: &str, grouping: &[(&str, &str)]) -> Result<(), PushError> {
        self.send(Method::DELETE, job, grouping, String::new())
            .await
    }

    /// The path of a group: `/metrics/job/<job>{/<label>/<value>}`.
    fn group_path(&self, job: &str, grouping: &[(&str, &str)]) -> Result<String, PushError> {
        if job.is_empty() {
            return Err(PushError::InvalidGrouping {
                reason: "the job name is empty".to_owned(),
            });
        }
        let mut path = format!("{}/metrics", self.base_path);
        push_segment(&mut path, "job", job);
        for &(name, value) in grouping {
            crate::validate::label_name(name, crate::MetricKind::Unknown).map_err(|e| {
                PushError::InvalidGrouping {
                    reason: e.to_string(),
                }
            })?;
            if name == "job" {
                return Err(PushError::InvalidGrouping {
                    reason: "`job` is given by the job name".to_owned(),
                });
            }
            push_segment(&mut path, name, value);
        }
        Ok(path)
    }

    async fn send(
        &self,
        method: Method,
        job: &str,
        grouping: &[(&str, &str)],
        body: String,
    ) -> Result<(), PushError> {
        let path = self.group_path(job, grouping)?;
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
            *request.uri_mut() = path.parse().map_err(|_| PushError::InvalidGrouping {
                reason: format!("the path {path:?} is not a valid URI"),
            })?;
            let headers = request.headers_mut();
            if let Ok(host) = HeaderValue::from_str(&self.authority) {
                headers.insert(header::HOST, host);
            }
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(text::CONTENT_TYPE),
            );
            if let Some(authorization) = self
                .authorization
                .as_deref()
                .and_then(|a| HeaderValue::from_str(a).ok())
            {
                headers.insert(header::AUTHORIZATION, authorization);
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
                Ok(())
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

/// Appends `/<name>/<value>`, or `/<name>@base64/<value>` when the value cannot stand in a
/// path as it is.
fn push_segment(path: &mut String, name: &str, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'~'));
    path.push('/');
    path.push_str(name);
    if plain {
        path.push('/');
        path.push_str(value);
    } else if value.is_empty() {
        // The Pushgateway needs one `=` for an empty value.
        path.push_str("@base64/=");
    } else {
        path.push_str("@base64/");
        path.push_str(&crate::base64::encode(
            value.as_bytes(),
            crate::base64::URL_SAFE,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_normalised() {
        let g = Pushgateway::new("http://127.0.0.1:9091").unwrap();
        assert_eq!(
            (g.authority.as_str(), g.base_path.as_str()),
            ("127.0.0.1:9091", "")
        );
        let g = Pushgateway::new("http://gateway/prefix/").unwrap();
        assert_eq!(
            (g.authority.as_str(), g.base_path.as_str()),
            ("gateway:80", "/prefix")
        );
        for bad in [
            "127.0.0.1:9091",
            "https://x",
            "http://",
            "http://u:p@x",
            "http://x:port",
        ] {
            let err = Pushgateway::new(bad).unwrap_err();
            assert!(matches!(err, PushError::InvalidUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn grouping_values_that_cannot_stand_in_a_path_are_base64_encoded() {
        let g = Pushgateway::new("http://127.0.0.1:9091").unwrap();
        let path = g
            .group_path(
                "nightly",
                &[("shard", "eu-1"), ("dir", "/var/tmp"), ("empty", "")],
            )
            .unwrap();
        assert_eq!(
            path,
            "/metrics/job/nightly/shard/eu-1/dir@base64/L3Zhci90bXA=/empty@base64/="
        );
        assert!(g.group_path("", &[]).is_err());
        assert!(g.group_path("j", &[("bad-name", "x")]).is_err());
        assert!(g.group_path("j", &[("job", "x")]).is_err());
    }
}
