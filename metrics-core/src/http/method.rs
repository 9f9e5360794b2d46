//! Request methods as labels: the methods of RFC 9110 and PATCH, anything else `_OTHER`.

/// The method labels, as OpenTelemetry's conventions require (methods are case-sensitive:
/// `get` is `_OTHER`); a request's guard keeps an index into this.
pub(super) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

pub(super) fn method_index(method: &str) -> u8 {
    match method {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "CONNECT" => 5,
        "OPTIONS" => 6,
        "TRACE" => 7,
        "PATCH" => 8,
        _ => 9,
    }
}
