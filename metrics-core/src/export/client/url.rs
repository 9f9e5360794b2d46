//! Where push and OTLP requests go: a URL read once, at construction, into what every request
//! needs, or an error that says what is wrong with it.

use super::PushError;

/// The scheme of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// An endpoint: `http[s]://host[:port][/base][?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) scheme: Scheme,
    /// The host as connected to and named in TLS: an IPv6 literal without its brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host:port` as the `Host` header carries it (IPv6 literals in brackets).
    pub(crate) authority: String,
    /// The base path, without a trailing `/` (empty for the root).
    pub(crate) base_path: String,
    /// The query, without its `?`, sent with every request.
    pub(crate) query: Option<String>,
}

impl Endpoint {
    /// Reads `url`; the scheme is matched without regard to case.
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] for anything that would not give a correct request: no or
    /// another scheme, user info (pass credentials with `basic_auth`), a fragment, a missing
    /// host, a bad port, characters a URL cannot hold (spaces, control characters).
    pub(crate) fn parse(url: &str) -> Result<Self, PushError> {
        let invalid = |reason| PushError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        if url.contains('#') {
            return Err(invalid("a fragment is never sent to the server; remove it"));
        }
        let uri: hyper::Uri = url.parse().map_err(|_| {
            invalid("it is not a URL (spaces and control characters must be percent-encoded)")
        })?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(_) => return Err(invalid("its scheme must be http or https")),
            None => return Err(invalid("it must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("it needs a host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "it must not carry user info; use basic_auth or bearer_token",
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("it needs a host"));
        }
        // `port_u16` is `None` both without a port and with an invalid one.
        let port = match (authority.port_u16(), authority.as_str().rsplit_once(':')) {
            (Some(port), _) => port,
            (None, Some((_, after))) if !after.ends_with(']') => {
                return Err(invalid("its port is not a number from 0 to 65535"))
            }
            (None, _) => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
        };
        let bare_host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Self {
            scheme,
            host: bare_host.to_owned(),
            port,
            authority: format!("{host}:{port}"),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            query: uri.query().filter(|q| !q.is_empty()).map(str::to_owned),
        })
    }

    /// The request target of `path` below the base path, with the endpoint's query.
    pub(crate) fn request_target(&self, path: &str) -> String {
        match &self.query {
            Some(query) => format!("{}{path}?{query}", self.base_path),
            None => format!("{}{path}", self.base_path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn hosts_ports_paths_and_queries_are_read_as_a_server_expects() {
        let e = parse("http://127.0.0.1:9091");
        assert_eq!(
            (
                e.scheme,
                e.authority.as_str(),
                e.request_target("/metrics/job/j")
            ),
            (Scheme::Http, "127.0.0.1:9091", "/metrics/job/j".to_owned())
        );
        let e = parse("http://gateway/prefix/");
        assert_eq!(e.authority, "gateway:80");
        assert_eq!(e.request_target("/v1/metrics"), "/prefix/v1/metrics");
        // The query goes after the whole path, not between the base and the rest.
        let e = parse("http://c:4318/?tenant=a");
        assert_eq!(e.request_target("/v1/metrics"), "/v1/metrics?tenant=a");
        let e = parse("HTTP://c:4318");
        assert_eq!((e.scheme, e.port), (Scheme::Http, 4318));
        let e = parse("HttpS://collector.example");
        assert_eq!((e.scheme, e.port), (Scheme::Https, 443));
        let e = parse("http://[::1]:4318/otlp/");
        assert_eq!(
            (e.host.as_str(), e.authority.as_str(), e.base_path.as_str()),
            ("::1", "[::1]:4318", "/otlp")
        );
        assert_eq!(parse("http://[::1]").authority, "[::1]:80");
    }

    #[test]
    fn urls_that_would_give_a_wrong_request_are_errors() {
        for bad in [
            "127.0.0.1:9091",
            "ftp://x",
            "http://",
            "http://u:p@x",
            "http://x:port",
            "http://x:70000",
            "http://c:4318/#x",
            "http://c:4318/a b",
            "http://c:4318/a\nb",
            "",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(
                matches!(err, PushError::InvalidUrl { .. }),
                "{bad:?}: {err}"
            );
        }
    }
}
