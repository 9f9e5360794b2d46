//! [`Patterns`]: the route pattern of a request before routing, without walking actix's
//! resource map for most requests.
//!
//! Before routing, finding the pattern means walking the resource map and trying each
//! resource's regex: the largest part of what the middleware would cost. Each worker avoids
//! the walk in three ways, tried in order:
//!
//! 1. **Static routes** (paths that are their own pattern, such as `/health`) are kept in a
//!    set of at most [`MAX_STATIC_ROUTES`]. Exact: the answer depends on the path alone (the
//!    map is fixed once the app is built).
//! 2. **Recent paths** are kept in a direct-mapped table of [`SLOTS`] entries, where a path
//!    replaces whatever shared its slot. A path enters the table only the second time its hash
//!    is seen in a row at its slot, so a stream of distinct paths copies nothing. Exact, too.
//! 3. **A guess.** Every dynamic pattern the walk found (up to [`MAX_LEARNED`]) goes into a
//!    [`matchit`] router, so that a path never seen before, such as `/users/8127`, is matched
//!    against the patterns seen so far in well under a microsecond. A guess can only be wrong
//!    when patterns overlap in ways matchit orders differently from actix (a pattern not seen
//!    yet that actix tries first, a regex segment); a pattern that was ever guessed wrong is
//!    never guessed again on that worker.
//!
//! Paths that none of these answer (the first of each shape, unmatched paths) take the walk.
//!
//! **Checked after routing.** A guess or a walk is an answer given before actix routed the
//! request, and actix may route it otherwise: a guess may be wrong, and a middleware inside
//! ours may rewrite the path (`NormalizePath` wrapped before `Metrics`), or a guard may send
//! it elsewhere. Once actix has routed the request, its own (then nearly free) answer is
//! compared with ours ([`Pending`]); the request is recorded under actix's answer, and only a
//! right answer enters the tables above. A wrong one was counted in flight under the wrong
//! route until the response started. Answers from the tables are not checked: where guards
//! route one path to different patterns from request to request (by a header, say), the
//! path's requests after it was remembered are recorded under the pattern it was remembered
//! with. Paths are taken as actix routes them: percent-decoded (`/h%65alth` is `/health`).
//!
//! Each pattern (and the answer "no route") is one [`Entry`], shared by every path that has
//! it, with a [`RouteHint`]: the pattern's series, so that the recorder does not look them up
//! by their labels for every request.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasher as _, BuildHasherDefault};
use std::rc::Rc;

use actix_web::dev::{ResourceMap, ServiceRequest, Url};
use actix_web::HttpRequest;
use vitals_core::http::{RequestGuard, RouteHint};

/// Static routes remembered per worker; past this, they share the table with other paths.
pub(crate) const MAX_STATIC_ROUTES: usize = 256;
/// Entries of the table of recent paths, per worker.
pub(crate) const SLOTS: usize = 512;
/// Dynamic patterns learned for guessing, per worker. Patterns come from the app's routes, so
/// this is only reached by apps with that many dynamic routes.
pub(crate) const MAX_LEARNED: usize = 1024;
/// Longer paths are not remembered (they would make the table's memory unbounded in practice).
const MAX_PATH: usize = 256;

type Hasher = foldhash::fast::RandomState;

/// Recent answers of `match_pattern()`, per worker (actix builds one middleware per worker,
/// so no lock is needed).
pub(crate) struct Patterns {
    inner: RefCell<Inner>,
}

/// A path, and its pattern.
type Remembered = (Box<str>, Rc<Entry>);

/// A pattern as requests are recorded under it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `None`: no route matched.
    pattern: Option<Box<str>>,
    hint: RouteHint,
    /// Whether the pattern was offered to the guesses' router (dynamic patterns, once).
    offered: Cell<bool>,
}

impl Entry {
    fn new(pattern: Option<&str>) -> Rc<Self> {
        Rc::new(Self {
            pattern: pattern.map(Box::from),
            hint: RouteHint::new(),
            offered: Cell::new(false),
        })
    }
}

struct Inner {
    hasher: Hasher,
    /// Keyed by the path's hash (the one that also picks its slot): one hash per request.
    static_routes: HashMap<u64, Rc<Entry>, BuildHasherDefault<Prehashed>>,
    /// Every pattern the walk answered, once: as many as the app has routes.
    entries: HashMap<Box<str>, Rc<Entry>, Hasher>,
    /// The answer "no route matched".
    unmatched: Rc<Entry>,
    slots: Box<[Option<Remembered>]>,
    /// Per slot, the hash of the last path that missed there: admission to the slot.
    seen: Box<[u64]>,
    guesses: Guesses,
    /// The app's resource map, kept once a path is guessed or walked, to check the answers of
    /// requests whose response never came.
    map: Option<Rc<ResourceMap>>,
}

/// Dynamic patterns seen so far, for guessing the pattern of paths not seen yet.
struct Guesses {
    router: matchit::Router<usize>,
    /// Indexed by the router's values.
    learned: Vec<Learned>,
}

/// Hashes a key that is a hash already: passes it through.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Learned {
    entry: Rc<Entry>,
    /// Cleared when a guess of this pattern was wrong.
    trusted: bool,
}

/// A pattern answered before routing without the tables (a guess, or a walk of the resource
/// map), to check against actix's answer after routing.
#[derive(Debug)]
pub(crate) struct Pending {
    entry: Rc<Entry>,
    /// Where a guessed pattern is in [`Guesses::learned`]; `None` for a walk.
    guessed: Option<usize>,
    /// The request's path as actix routes it: to compare with the path actix routed, and to
    /// walk the map for when the request's response never came (an `Err` from the inner
    /// service).
    url: Url,
    /// The path's hash, which picks its place in the tables where a right answer is
    /// remembered.
    hash: u64,
    patterns: Rc<Patterns>,
}

impl Default for Patterns {
    fn default() -> Self {
        Self {
            inner: RefCell::new(Inner {
                hasher: Hasher::default(),
                static_routes: HashMap::default(),
                entries: HashMap::default(),
                unmatched: Entry::new(None),
                slots: (0..SLOTS).map(|_| None).collect(),
                seen: vec![0; SLOTS].into_boxed_slice(),
                guesses: Guesses {
                    router: matchit::Router::new(),
                    learned: Vec::new(),
                },
                map: None,
            }),
        }
    }
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns").finish_non_exhaustive()
    }
}

impl Patterns {
    /// Calls `f` with the pattern of `request`'s path (`None`: no route matches) and the
    /// pattern's hint: from the tables when they know the path, otherwise guessed or walked,
    /// and then to be checked after routing with [`Pending::settle`].
    pub(crate) fn with_pattern<T>(
        self: &Rc<Self>,
        request: &ServiceRequest,
        f: impl FnOnce(Option<&str>, &RouteHint) -> T,
    ) -> (T, Option<Box<Pending>>) {
        // The path as actix routes it: percent-decoded where decoding cannot change its
        // segments.
        let path = request.match_info().as_str();
        let mut inner = self.inner.borrow_mut();
        let hash = inner.hasher.hash_one(path);
        if let Some(entry) = inner.static_routes.get(&hash) {
            if entry.pattern.as_deref() == Some(path) {
                return (f(Some(path), &entry.hint), None);
            }
        }
        if let Some(i) = slot(path, hash) {
            if let Some((seen, entry)) = &inner.slots[i] {
                if **seen == *path {
                    return (f(entry.pattern.as_deref(), &entry.hint), None);
                }
            }
        }
        let (entry, guessed) = match inner.guesses.guess(path) {
            Some((learned, entry)) => (entry, Some(learned)),
            None => {
                let pattern = request.resource_map().match_pattern(path);
                (inner.entry(pattern.as_deref()), None)
            }
        };
        // For answers to check without a response.
        inner
            .map
            .get_or_insert_with(|| Rc::new(request.resource_map().clone()));
        drop(inner);
        let pending = Pending {
            entry,
            guessed,
            url: request.match_info().get_ref().clone(),
            hash,
            patterns: Rc::clone(self),
        };
        let entry = &pending.entry;
        (
            f(entry.pattern.as_deref(), &entry.hint),
            Some(Box::new(pending)),
        )
    }
}

impl Inner {
    /// Remembers `path`'s pattern in its slot of the table, if the path is short enough and
    /// its hash is the last one that missed there; otherwise makes it that one.
    fn admit(&mut self, path: &str, hash: u64, entry: Rc<Entry>) {
        let Some(i) = slot(path, hash) else {
            return;
        };
        if self.seen[i] == hash {
            self.slots[i] = Some((path.into(), entry));
        } else {
            self.seen[i] = hash;
        }
    }

    /// Remembers the right answer of a walk for `path`: in the static routes if the path is
    /// its own pattern (and there is room), else in the table of recent paths; a dynamic
    /// pattern is offered to the guesses.
    fn remember(&mut self, path: &str, hash: u64, entry: &Rc<Entry>) {
        let is_static = entry.pattern.as_deref() == Some(path);
        // (A static route whose hash another one has is left to the table: never in practice.)
        if is_static
            && self.static_routes.len() < MAX_STATIC_ROUTES
            && !self.static_routes.contains_key(&hash)
        {
            self.static_routes.insert(hash, Rc::clone(entry));
        } else {
            self.admit(path, hash, Rc::clone(entry));
        }
        if !is_static {
            self.guesses.learn(entry);
        }
    }

    /// The one entry of `pattern`.
    fn entry(&mut self, pattern: Option<&str>) -> Rc<Entry> {
        let Some(pattern) = pattern else {
            return Rc::clone(&self.unmatched);
        };
        if let Some(entry) = self.entries.get(pattern) {
            return Rc::clone(entry);
        }
        let entry = Entry::new(Some(pattern));
        self.entries.insert(pattern.into(), Rc::clone(&entry));
        entry
    }
}

impl Guesses {
    /// A trusted pattern that matches `path`, if any: where it is in `learned`, and the
    /// pattern.
    fn guess(&self, path: &str) -> Option<(usize, Rc<Entry>)> {
        let index = *self.router.at(path).ok()?.value;
        let learned = &self.learned[index];
        learned.trusted.then(|| (index, Rc::clone(&learned.entry)))
    }

    /// Offers a dynamic pattern to the router, once. Patterns matchit cannot express exactly
    /// (regex segments, parameters inside a segment) are not guessed; nor is "no route".
    fn learn(&mut self, entry: &Rc<Entry>) {
        if entry.offered.replace(true) || self.learned.len() >= MAX_LEARNED {
            return;
        }
        let Some(route) = entry.pattern.as_deref().and_then(to_matchit) else {
            return;
        };
        if self.router.insert(route, self.learned.len()).is_ok() {
            self.learned.push(Learned {
                entry: Rc::clone(entry),
                trusted: true,
            });
        }
    }
}

impl Pending {
    /// Settles the answer with actix's own: from `routed`, the request as actix routed it,
    /// or, when no response came, from a walk of the map for the request's path. A wrong
    /// answer moves the request to actix's route before anything but its in-flight count is
    /// recorded; a right one is remembered.
    pub(crate) fn settle(self, guard: &mut RequestGuard, routed: Option<&HttpRequest>) {
        let actual = match routed {
            // No resource matches the path, and actix routed that same path: nothing to ask.
            Some(request)
                if self.guessed.is_none()
                    && self.entry.pattern.is_none()
                    && request.match_info().as_str() == self.url.path() =>
            {
                None
            }
            // After routing, actix answers from the resource it routed to.
            Some(request) => request.match_pattern(),
            None => {
                let map = self.patterns.inner.borrow().map.clone();
                map.and_then(|map| map.match_pattern(self.url.path()))
            }
        };
        if !self.confirm(actual.as_deref()) {
            guard.set_route(actual.as_deref());
        }
    }

    /// Whether the answer was actix's (`actual`; `None`: no route matched). A right answer
    /// is remembered; a pattern guessed wrong is not guessed again, and a path walked wrong
    /// (rewritten inside our middleware, or sent elsewhere by a guard) is walked again next
    /// time.
    fn confirm(self, actual: Option<&str>) -> bool {
        let right = actual == self.entry.pattern.as_deref();
        let mut inner = self.patterns.inner.borrow_mut();
        match (right, self.guessed) {
            // A guessed pattern is dynamic, and learned already: only the path is new.
            (true, Some(_)) => inner.admit(self.url.path(), self.hash, self.entry),
            (true, None) => inner.remember(self.url.path(), self.hash, &self.entry),
            (false, Some(learned)) => inner.guesses.learned[learned].trusted = false,
            (false, None) => {}
        }
        right
    }
}

/// The slot of the table of recent paths that `path`, whose hash is `hash`, may take: none
/// for paths too long to remember.
#[allow(clippy::cast_possible_truncation)] // only the low bits pick the slot
fn slot(path: &str, hash: u64) -> Option<usize> {
    (path.len() <= MAX_PATH).then_some(hash as usize % SLOTS)
}

/// The matchit route for an actix pattern, when matchit matches exactly the same paths as
/// actix's regex for it: literal text, `{name}` parameters that fill a whole segment, and a
/// trailing `{name:.*}` tail. Parameters are renamed by position, so that patterns that name
/// the same segment differently do not conflict.
fn to_matchit(pattern: &str) -> Option<String> {
    let mut route = String::with_capacity(pattern.len() + 8);
    let mut rest = pattern;
    let mut params = 0;
    while let Some(open) = rest.find('{') {
        let (literal, tail) = rest.split_at(open);
        if literal.contains('}') {
            return None;
        }
        route.push_str(literal);
        let close = tail.find('}')?;
        let inside = &tail[1..close];
        let after = &tail[close + 1..];
        // A parameter must fill its segment: matchit has no prefixes or suffixes.
        if !route.ends_with('/') || !(after.is_empty() || after.starts_with('/')) {
            return None;
        }
        match inside.split_once(':') {
            None if is_name(inside) => route.push_str(&format!("{{p{params}}}")),
            // matchit's catch-all needs at least one character, as `.+` does; a `.*` tail
            // that is empty is not guessed (the walk answers it).
            Some((name, ".*" | ".+")) if is_name(name) && after.is_empty() => {
                route.push_str(&format!("{{*p{params}}}"));
            }
            _ => return None,
        }
        params += 1;
        rest = after;
    }
    if rest.contains('}') {
        return None;
    }
    route.push_str(rest);
    Some(route)
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_matchit_expresses_exactly_are_translated_and_others_are_not() {
        for (actix, matchit) in [
            ("/users/{id}", Some("/users/{p0}")),
            ("/users/{id}/posts/{post}", Some("/users/{p0}/posts/{p1}")),
            ("/files/{tail:.*}", Some("/files/{*p0}")),
            ("/files/{tail:.+}", Some("/files/{*p0}")),
            ("/users/{id}/", Some("/users/{p0}/")),
            // a regex segment matches fewer paths than matchit's parameter would
            ("/users/{id:\\d+}", None),
            // parameters inside a segment
            ("/files/{name}.{ext}", None),
            ("/item-{id}", None),
            // a tail in the middle, a stray brace
            ("/files/{tail:.*}/x", None),
            ("/a}b", None),
            ("/{}", None),
        ] {
            assert_eq!(to_matchit(actix).as_deref(), matchit, "{actix}");
        }
    }
}
