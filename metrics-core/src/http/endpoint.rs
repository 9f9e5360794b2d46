//! The answer of a metrics endpoint, the same in every adapter: status, format from
//! `Accept`, gzip from `Accept-Encoding`, and the headers that go with them.

use std::borrow::Cow;

use crate::encoding::openmetrics::EncodeOptions;
use crate::error::Error;
use crate::registry::Registry;

/// What a metrics endpoint answers, before its body is compressed: see
/// [`into_wire`](Self::into_wire) for the response an adapter sends.
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
    /// Further headers to send (the live page's `Content-Security-Policy`, for instance).
    pub extra_headers: &'static [(&'static str, &'static str)],
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
    endpoint_response_with(
        registry,
        method,
        accept,
        allowed,
        registration,
        EncodeOptions::default(),
    )
}

/// [`endpoint_response`], with these options for an OpenMetrics answer.
#[must_use]
pub fn endpoint_response_with(
    registry: &Registry,
    method: &str,
    accept: Option<&str>,
    allowed: bool,
    registration: Result<(), &Error>,
    options: EncodeOptions,
) -> EndpointResponse {
    if let Some(refusal) = EndpointResponse::refusal(method, allowed) {
        return refusal;
    }
    if let Err(error) = registration {
        return EndpointResponse::plain(
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
            format.encode_with(registry, options)
        },
        extra_headers: &[],
    }
}

/// The `Vary` header of every metrics answer: its body depends on both headers.
pub const VARY: &str = "Accept, Accept-Encoding";

impl EndpointResponse {
    /// A plain-text answer.
    pub(crate) fn plain(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            allow: None,
            body: body.into(),
            extra_headers: &[],
        }
    }

    /// What every endpoint (the metrics, the live page and its data) answers before looking
    /// at what was asked: `405` with `Allow: GET, HEAD` for other methods, `403` when the
    /// access hook said no; `None` to go on.
    pub(crate) fn refusal(method: &str, allowed: bool) -> Option<Self> {
        if method != "GET" && method != "HEAD" {
            return Some(Self {
                allow: Some("GET, HEAD"),
                ..Self::plain(405, "use GET\n")
            });
        }
        (!allowed).then(|| Self::plain(403, "forbidden\n"))
    }

    /// The response as it goes on the wire: the body gzipped when `accept_encoding` (the
    /// request's `Accept-Encoding`) allows it and gzip support is compiled in (the `gzip`
    /// feature, on in the adapters by default), and every header to send with it.
    #[must_use]
    pub fn into_wire(self, accept_encoding: Option<&str>) -> WireResponse {
        let compressed =
            (self.status == 200 && !self.body.is_empty() && accepts_gzip(accept_encoding))
                .then(|| gzip_bytes(self.body.as_bytes()))
                .flatten();
        let gzip = compressed.is_some();
        let body = compressed.unwrap_or_else(|| self.body.into_bytes());
        let mut headers = vec![
            ("content-type", Cow::Borrowed(self.content_type)),
            ("vary", Cow::Borrowed(VARY)),
        ];
        if let Some(allow) = self.allow {
            headers.push(("allow", Cow::Borrowed(allow)));
        }
        for &(name, value) in self.extra_headers {
            headers.push((name, Cow::Borrowed(value)));
        }
        if gzip {
            headers.push(("content-encoding", Cow::Borrowed("gzip")));
        }
        // A HEAD answer has no body; its length is left to the framework, which knows the
        // rules for HEAD.
        if !body.is_empty() {
            headers.push(("content-length", Cow::Owned(body.len().to_string())));
        }
        WireResponse {
            status: self.status,
            headers,
            body,
        }
    }
}

/// A metrics answer ready to send: adapters copy its status, headers and body into their
/// framework's response (or, with the `http` feature, call
/// `WireResponse::into_http`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireResponse {
    /// The status code.
    pub status: u16,
    /// The headers, lower-case names: `content-type`, `vary`, and when they apply `allow`,
    /// the answer's extra headers, `content-encoding` and `content-length`.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body, compressed if `content-encoding` says so.
    pub body: Vec<u8>,
}

impl WireResponse {
    /// The value of a header, if the answer has it.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// As an [`http::Response`], for frameworks built on the `http` crate (axum, tonic,
    /// hyper).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[must_use]
    pub fn into_http(self) -> http::Response<Vec<u8>> {
        let mut response = http::Response::new(self.body);
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            let value = match value {
                Cow::Borrowed(value) => http::HeaderValue::from_static(value),
                // Only the length is owned: digits, always a valid header value.
                Cow::Owned(value) => match http::HeaderValue::try_from(value) {
                    Ok(value) => value,
                    Err(_) => continue,
                },
            };
            headers.insert(http::HeaderName::from_static(name), value);
        }
        response
    }
}

/// Whether an `Accept-Encoding` header allows gzip (RFC 9110 §12.5.3): `gzip` listed with a
/// weight above 0, or failing that `*` with a weight above 0. An explicit `gzip;q=0` refuses
/// gzip whatever `*` says. Names and the `q` parameter are case-insensitive.
#[must_use]
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let (mut gzip, mut any) = (None, None);
    for coding in header.split(',') {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let weight = parts
            .filter_map(|p| {
                let (key, value) = p.split_once('=')?;
                key.trim().eq_ignore_ascii_case("q").then(|| value.trim())
            })
            .next()
            .map_or(Some(1.0), |q| {
                q.parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q))
            });
        // A malformed weight counts as a refusal: sending gzip to a client that did not
        // clearly ask for it is the worse mistake.
        let weight = weight.unwrap_or(0.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.map_or(weight, |w: f64| w.max(weight)));
        } else if name == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|w| w > 0.0)
}

#[cfg(feature = "gzip")]
fn gzip_bytes(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// Without the `gzip` feature, answers are sent as they are.
#[cfg(not(feature = "gzip"))]
fn gzip_bytes(_: &[u8]) -> Option<Vec<u8>> {
    None
}
