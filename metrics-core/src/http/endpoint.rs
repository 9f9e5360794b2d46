//! The answer of a metrics endpoint, the same in every adapter.

use crate::error::Error;
use crate::registry::Registry;

/// What a metrics endpoint answers; adapters turn it into their framework's response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The `Allow` header, for a method other than `GET` and `HEAD`.
    pub allow: Option<&'static str>,
    /// The body (empty for `HEAD`).
    pub body: String,
}

/// The answer to a request for the metrics endpoint, the same in every adapter: `405` with
/// `Allow: GET, HEAD` for other methods, `403` when the access hook said no, `500` with the
/// reason when the HTTP metrics could not be registered, else `200` in the format the
/// `Accept` header asks for ([`Format::from_accept`](crate::encoding::Format::from_accept)).
#[must_use]
pub fn endpoint_response(
    registry: &Registry,
    method: &str,
    accept: Option<&str>,
    allowed: bool,
    registration: Result<(), &Error>,
) -> EndpointResponse {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let plain = |status, body: String| EndpointResponse {
        status,
        content_type: PLAIN,
        allow: None,
        body,
    };
    if method != "GET" && method != "HEAD" {
        return EndpointResponse {
            allow: Some("GET, HEAD"),
            ..plain(405, "use GET\n".to_owned())
        };
    }
    if !allowed {
        return plain(403, "forbidden\n".to_owned());
    }
    if let Err(error) = registration {
        return plain(
            500,
            format!("the HTTP metrics could not be registered: {error}\n"),
        );
    }
    let format = crate::encoding::Format::from_accept(accept);
    EndpointResponse {
        status: 200,
        content_type: format.content_type(),
        allow: None,
        body: if method == "HEAD" {
            String::new()
        } else {
            format.encode(registry)
        },
    }
}
