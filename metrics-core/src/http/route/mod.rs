//! Route templating for services without a router that names routes: `/users/123` becomes
//! `/users/{id}`, and a raw path never becomes a label value.

mod learned;

use crate::error::Error;
use learned::LearnedTemplates;

/// The route label of requests that no route matched.
pub const UNMATCHED_ROUTE: &str = "__unmatched__";

/// How many templates the built-in rules keep at once.
pub const DEFAULT_LEARNED_TEMPLATES: usize = 64;

/// The most templates [`RouteTemplater::learned_templates`] keeps at once.
pub const MAX_LEARNED_TEMPLATES: usize = 4096;

/// Paths longer than this are not templated: they go to [`UNMATCHED_ROUTE`].
const MAX_PATH_BYTES: usize = 512;

/// Turns request paths into route templates.
///
/// 1. Your patterns first, in the order given: `/users/{id}`, also written `/users/<id>` or
///    `/users/:id`, and a tail `/files/{*path}` (or `*path`) that matches the rest of the path.
///    A match gives the pattern, written with braces.
/// 2. Then built-in rules, segment by segment: digits become `{id}`, UUIDs `{uuid}`, hex
///    strings of 16 characters or more `{hex}`, and token-like strings (20 characters or more
///    of letters, digits, `-` and `_`, with letters and digits both) `{token}`.
///    A path in which no segment was replaced is a raw path and gives [`UNMATCHED_ROUTE`].
/// 3. The templates the built-in rules make are bounded: at most [`DEFAULT_LEARNED_TEMPLATES`]
///    are kept at once, and one that is not kept gives [`UNMATCHED_ROUTE`]. While there is
///    room, a template is kept at once. When there is none, a new template is kept once it
///    has been asked for at least twice and more often than the least used template kept,
///    which it then replaces; counts fade over time. A scanner whose paths are each sent once
///    adds at most the cap in label values, however many it sends, and cannot keep out a
///    route clients really use: a route that arrives after the scanner is kept by its second
///    request. (What a family does with many label values over time is bounded by its series
///    cap.) Memory is fixed by the cap: 144 bytes per kept template, nothing per request.
///
/// Looking up a template takes no lock: a templated request costs a few atomic loads besides
/// the template's own string.
///
/// ```
/// use vitals_core::route::{RouteTemplater, UNMATCHED_ROUTE};
///
/// let templater = RouteTemplater::new()
///     .pattern("/users/:id/orders/<order_id>")?
///     .pattern("/static/{*file}")?;
/// assert_eq!(templater.template("/users/7/orders/abc"), "/users/{id}/orders/{order_id}");
/// assert_eq!(templater.template("/static/css/site.css"), "/static/{*file}");
/// assert_eq!(templater.template("/items/123/reviews"), "/items/{id}/reviews");
/// assert_eq!(
///     templater.template("/sessions/550e8400-e29b-41d4-a716-446655440000"),
///     "/sessions/{uuid}"
/// );
/// assert_eq!(templater.template("/wp-login.php"), UNMATCHED_ROUTE);
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug)]
pub struct RouteTemplater {
    patterns: Vec<Pattern>,
    /// `None`: the built-in rules are off.
    learned: Option<LearnedTemplates>,
}

impl Default for RouteTemplater {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param,
    Tail,
}

#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Segment>,
    /// The pattern written with braces: the label value.
    template: String,
}

impl RouteTemplater {
    /// A templater with no patterns: built-in rules only.
    #[must_use]
    pub fn new() -> Self {
        Self {
            patterns: Vec::new(),
            learned: Some(LearnedTemplates::new(DEFAULT_LEARNED_TEMPLATES)),
        }
    }

    /// Adds a route pattern.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRoute`] when the pattern does not start with `/`, has an empty or
    /// unclosed parameter, or a tail that is not the last segment.
    pub fn pattern(mut self, pattern: &str) -> Result<Self, Error> {
        self.patterns.push(parse_pattern(pattern)?);
        Ok(self)
    }

    /// Sets how many templates the built-in rules keep at once: rounded up to a multiple of 8,
    /// at most [`MAX_LEARNED_TEMPLATES`]. Defaults to [`DEFAULT_LEARNED_TEMPLATES`]; 0 turns
    /// the built-in rules off.
    #[must_use]
    pub fn learned_templates(mut self, cap: usize) -> Self {
        self.learned = (cap > 0).then(|| LearnedTemplates::new(cap.min(MAX_LEARNED_TEMPLATES)));
        self
    }

    /// The route template of `path` (a query string, if any, is ignored).
    #[must_use]
    pub fn template(&self, path: &str) -> String {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.len() > MAX_PATH_BYTES || !path.starts_with('/') {
            return UNMATCHED_ROUTE.to_owned();
        }
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        if let Some(pattern) = self.patterns.iter().find(|p| p.matches(&segments)) {
            return pattern.template.clone();
        }
        let Some(learned) = &self.learned else {
            return UNMATCHED_ROUTE.to_owned();
        };
        let mut replaced = false;
        let templated: Vec<&str> = segments
            .iter()
            .map(|segment| match builtin(segment) {
                Some(name) => {
                    replaced = true;
                    name
                }
                None => segment,
            })
            .collect();
        if !replaced {
            return UNMATCHED_ROUTE.to_owned();
        }
        let template = format!("/{}", templated.join("/"));
        if learned.admit(&template) {
            template
        } else {
            UNMATCHED_ROUTE.to_owned()
        }
    }
}

impl Pattern {
    fn matches(&self, path: &[&str]) -> bool {
        let mut path = path.iter();
        for segment in &self.segments {
            match segment {
                Segment::Tail => return true,
                Segment::Literal(literal) => {
                    if path.next() != Some(&literal.as_str()) {
                        return false;
                    }
                }
                Segment::Param => {
                    if path.next().is_none_or(|s| s.is_empty()) {
                        return false;
                    }
                }
            }
        }
        path.next().is_none()
    }
}

fn parse_pattern(pattern: &str) -> Result<Pattern, Error> {
    let invalid = |reason: &str| Error::InvalidRoute {
        pattern: pattern.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(invalid("it must start with `/`"));
    };
    let mut segments = Vec::new();
    let mut written = Vec::new();
    let parts: Vec<&str> = rest.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let name = part
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .or_else(|| part.strip_prefix('<').and_then(|p| p.strip_suffix('>')))
            .or_else(|| part.strip_prefix(':'))
            .or_else(|| part.strip_prefix('*').map(|_| *part));
        match name {
            None if part.contains(['{', '}', '<', '>']) => {
                return Err(invalid(&format!(
                    "segment `{part}` has an unclosed parameter"
                )))
            }
            None => {
                segments.push(Segment::Literal((*part).to_owned()));
                written.push((*part).to_owned());
            }
            Some(name) => {
                let (tail, name) = match name.strip_prefix('*') {
                    Some(name) => (true, name),
                    None => (false, name),
                };
                if name.is_empty() {
                    return Err(invalid(&format!("segment `{part}` has no parameter name")));
                }
                if tail {
                    if i + 1 != parts.len() {
                        return Err(invalid("a tail `{*name}` must be the last segment"));
                    }
                    segments.push(Segment::Tail);
                    written.push(format!("{{*{name}}}"));
                } else {
                    segments.push(Segment::Param);
                    written.push(format!("{{{name}}}"));
                }
            }
        }
    }
    Ok(Pattern {
        segments,
        template: format!("/{}", written.join("/")),
    })
}

/// The built-in parameter a segment looks like, if any.
fn builtin(segment: &str) -> Option<&'static str> {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(bytes) {
        return Some("{uuid}");
    }
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Some("{hex}");
    }
    let token_chars = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if bytes.len() >= 20
        && token_chars
        && bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().any(u8::is_ascii_alphabetic)
    {
        return Some("{token}");
    }
    None
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_three_pattern_syntaxes_give_one_template() {
        for pattern in ["/users/{id}", "/users/<id>", "/users/:id"] {
            let t = RouteTemplater::new().pattern(pattern).unwrap();
            assert_eq!(t.template("/users/alice"), "/users/{id}", "{pattern}");
            assert_eq!(t.template("/users/"), UNMATCHED_ROUTE, "an empty parameter");
            assert_eq!(
                t.template("/users/a/b"),
                UNMATCHED_ROUTE,
                "too many segments"
            );
        }
    }

    #[test]
    fn patterns_are_tried_in_order_and_tails_take_the_rest() {
        let t = RouteTemplater::new()
            .pattern("/users/me")
            .unwrap()
            .pattern("/users/{id}")
            .unwrap()
            .pattern("/files/{*path}")
            .unwrap();
        assert_eq!(t.template("/users/me"), "/users/me");
        assert_eq!(t.template("/users/42?page=2"), "/users/{id}");
        assert_eq!(t.template("/files/a/b/c.txt"), "/files/{*path}");
    }

    #[test]
    fn invalid_patterns_are_errors_that_name_them() {
        for bad in ["users", "/users/{id", "/users/{}", "/a/{*rest}/b", "/x/<>"] {
            let err = RouteTemplater::new().pattern(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn builtin_rules_replace_ids_and_leave_raw_paths_unmatched() {
        let t = RouteTemplater::new();
        assert_eq!(t.template("/orders/12345"), "/orders/{id}");
        assert_eq!(t.template("/blobs/deadbeefdeadbeef00"), "/blobs/{hex}");
        assert_eq!(
            t.template("/invite/aZ3xQ9_kLm2-pQrStUvWx"),
            "/invite/{token}"
        );
        assert_eq!(t.template("/health"), UNMATCHED_ROUTE);
        assert_eq!(t.template("/.env"), UNMATCHED_ROUTE);
        assert_eq!(t.template("not-a-path"), UNMATCHED_ROUTE);
        assert_eq!(
            t.template(&format!("/{}", "a/1".repeat(400))),
            UNMATCHED_ROUTE
        );
    }

    #[test]
    fn a_scanner_adds_no_more_templates_than_the_cap() {
        let t = RouteTemplater::new().learned_templates(8);
        let mut seen = HashSet::new();
        for i in 0..10_000u32 {
            // Random-looking paths with ids in varying shapes.
            let path = format!("/x{}/{i}/y{}", i % 97, i % 13);
            seen.insert(t.template(&path));
        }
        assert!(
            seen.len() <= 9,
            "8 learned templates and the sentinel: {}",
            seen.len()
        );
        assert!(seen.contains(UNMATCHED_ROUTE));
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    #[test]
    fn a_scanner_that_came_first_cannot_keep_a_real_route_out() {
        let t = RouteTemplater::new();
        for i in 0..64 {
            let _ = t.template(&format!("/scan{i}/1"));
        }
        let answers: Vec<String> = (0..100).map(|_| t.template("/orders/123")).collect();
        let first = answers
            .iter()
            .position(|a| a == "/orders/{id}")
            .expect("the route is learned");
        assert!(
            first <= 2,
            "learned by its third request, not its {}th",
            first + 1
        );
        assert!(answers[first..].iter().all(|a| a == "/orders/{id}"));
    }

    #[test]
    fn a_busy_route_stays_learned_through_an_endless_scan() {
        let t = RouteTemplater::new();
        let mut routes = 0;
        for i in 0..50_000u32 {
            if i % 10 == 0 {
                let answer = t.template(&format!("/orders/{i}"));
                // Warm-up: the first few requests may arrive while the scanner holds the set.
                if i >= 100 {
                    assert_eq!(answer, "/orders/{id}", "request {i}");
                    routes += 1;
                }
            } else {
                // Every scanner path is new, and each is a new template.
                let _ = t.template(&format!("/probe{i}/1"));
            }
        }
        assert_eq!(routes, 4_990);
        let learned = t.learned.as_ref().unwrap();
        assert!(learned.learned() <= 64, "{}", learned.learned());
        assert!(learned.holds("/orders/{id}"));
    }

    #[test]
    fn templates_are_learned_up_to_the_cap_and_shared_across_threads() {
        let t = std::sync::Arc::new(RouteTemplater::new().learned_templates(16));
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let t = std::sync::Arc::clone(&t);
                std::thread::spawn(move || {
                    (0..2_000)
                        .map(|i| t.template(&format!("/t{}/{n}", i % 40)))
                        .filter(|a| a != UNMATCHED_ROUTE)
                        .count()
                })
            })
            .collect();
        let templated: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(templated > 0);
        let learned = t.learned.as_ref().unwrap();
        assert_eq!(
            learned.learned(),
            16,
            "the table is full, and holds no template twice"
        );
        let held = (0..40)
            .filter(|i| learned.holds(&format!("/t{i}/{{id}}")))
            .count();
        assert_eq!(held, 16);
    }

    #[test]
    fn the_cap_is_bounded_and_zero_turns_learning_off() {
        let off = RouteTemplater::new().learned_templates(0);
        assert_eq!(off.template("/orders/1"), UNMATCHED_ROUTE);
        let huge = RouteTemplater::new().learned_templates(usize::MAX);
        assert_eq!(huge.template("/orders/1"), "/orders/{id}");
    }
}
