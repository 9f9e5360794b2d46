//! The live page: `GET <endpoint>/live`, an HTML page that draws the four golden signals of
//! each route and `#[instrumented]` function over the last minutes, and `GET
//! <endpoint>/live.json`, the data it draws (see [`Windows::live_json`]), both answered from
//! the registry's [windowed statistics](crate::window).
//!
//! The adapters serve them when told to (`live(true)` on their builders; off by default),
//! behind the same access hook as the metrics endpoint, and so does the standalone exporter.
//! The page is one file, its script and styles inline: it loads nothing from elsewhere, so it
//! works on a machine with no internet, and its `Content-Security-Policy` lets it reach
//! nothing but its own `live.json`. It asks for `live.json` every two seconds and redraws.

use std::time::Duration;

use crate::error::Error;
use crate::http::EndpointResponse;
use crate::registry::Registry;
use crate::window::{WindowConfig, Windows};

/// The page: HTML, with its script and styles inline.
pub const PAGE: &str = include_str!("live.html");

/// The path of the page below the metrics endpoint's path.
pub const PAGE_SUFFIX: &str = "/live";

/// The path of its data below the metrics endpoint's path.
pub const JSON_SUFFIX: &str = "/live.json";

/// How far back the data goes: the default fine ring (5 minutes of 1 s slots).
pub const SPAN: Duration = Duration::from_secs(300);

/// What the page may load: its own inline script and styles, and `live.json` from its own
/// origin.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// One of the two live answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveRequest {
    /// The HTML page.
    Page,
    /// Its data.
    Json,
}

impl LiveRequest {
    /// Which live answer `path` asks for, below the metrics endpoint's path `endpoint`.
    #[must_use]
    pub fn of(endpoint: &str, path: &str) -> Option<Self> {
        match path.strip_prefix(endpoint)? {
            PAGE_SUFFIX => Some(Self::Page),
            JSON_SUFFIX => Some(Self::Json),
            _ => None,
        }
    }
}

/// Turns the registry's windowed statistics on, with the default rings unless they were on
/// already, and starts their ticker: what the adapters do when their live page is enabled.
///
/// # Errors
///
/// [`Error::InvalidWindow`] when the ticker thread cannot start.
pub fn enable(registry: &Registry) -> Result<Windows, Error> {
    let windows = match registry.windows() {
        Some(windows) => windows,
        None => registry.enable_windows(WindowConfig::default())?,
    };
    windows.spawn_ticker()?;
    Ok(windows)
}

/// The answer to a live request, the same in every adapter: `405` with `Allow: GET, HEAD` for
/// other methods, `403` when the access hook said no, `503` when the windowed statistics are
/// not enabled, else the page or its data.
#[must_use]
pub fn response(
    registry: &Registry,
    request: LiveRequest,
    method: &str,
    allowed: bool,
) -> EndpointResponse {
    if let Some(refusal) = EndpointResponse::refusal(method, allowed) {
        return refusal;
    }
    let head = method == "HEAD";
    let (content_type, body, extra_headers): (_, _, &'static [_]) = match request {
        LiveRequest::Page => (
            "text/html; charset=utf-8",
            if head { String::new() } else { PAGE.to_owned() },
            &[
                ("content-security-policy", CSP),
                ("cache-control", "no-store"),
                ("x-content-type-options", "nosniff"),
            ],
        ),
        LiveRequest::Json => {
            let Some(windows) = registry.windows() else {
                return EndpointResponse::plain(
                    503,
                    "the windowed statistics are not enabled (Registry::enable_windows)\n",
                );
            };
            let body = if head {
                String::new()
            } else {
                match windows.live_json(SPAN.min(windows.config().longest())) {
                    Ok(json) => json,
                    Err(error) => return EndpointResponse::plain(500, format!("{error}\n")),
                }
            };
            (
                "application/json",
                body,
                &[
                    ("cache-control", "no-store"),
                    ("x-content-type-options", "nosniff"),
                ],
            )
        }
    };
    EndpointResponse {
        status: 200,
        content_type,
        allow: None,
        body,
        extra_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_the_endpoint_are_recognised_and_nothing_else() {
        assert_eq!(
            LiveRequest::of("/metrics", "/metrics/live"),
            Some(LiveRequest::Page)
        );
        assert_eq!(
            LiveRequest::of("/metrics", "/metrics/live.json"),
            Some(LiveRequest::Json)
        );
        for path in [
            "/metrics",
            "/metrics/",
            "/metrics/live/",
            "/metricslive",
            "/live",
            "/metrics/live.json/x",
            "",
        ] {
            assert_eq!(LiveRequest::of("/metrics", path), None, "{path}");
        }
    }

    #[test]
    fn answers_follow_the_method_the_hook_and_the_windows() {
        let registry = Registry::new();
        assert_eq!(
            response(&registry, LiveRequest::Page, "POST", true).status,
            405
        );
        assert_eq!(
            response(&registry, LiveRequest::Json, "GET", false).status,
            403
        );
        let missing = response(&registry, LiveRequest::Json, "GET", true);
        assert_eq!(missing.status, 503);
        assert!(missing.body.contains("enable_windows"));
        let page = response(&registry, LiveRequest::Page, "GET", true);
        assert_eq!(
            (page.status, page.content_type),
            (200, "text/html; charset=utf-8")
        );
        // Nothing is loaded from elsewhere.
        for needle in ["http://", "https://", "src=", "<link", "@import"] {
            assert!(!page.body.contains(needle), "{needle}");
        }
        let windows = registry.enable_windows(WindowConfig::default()).unwrap();
        windows.tick_at(Duration::from_secs(0));
        windows.tick_at(Duration::from_secs(1));
        let json = response(&registry, LiveRequest::Json, "GET", true);
        assert_eq!((json.status, json.content_type), (200, "application/json"));
        assert!(
            json.body.starts_with("{\"step\":1.0,\"t\":["),
            "{}",
            json.body
        );
        assert!(response(&registry, LiveRequest::Json, "HEAD", true)
            .body
            .is_empty());
    }
}
