//! [`Patterns`]: the route pattern of a request before routing, without walking actix's
//! resource map for paths seen recently.
//!
//! Before routing, `match_pattern()` walks the resource map and tries each resource's regex:
//! the largest part of what the middleware costs. Its answer depends on the path alone (the
//! map is fixed once the app is built), so remembering answers by path is exact. Memory stays
//! bounded: static routes (paths that are their own pattern, such as `/health`) are kept in a
//! set of at most [`MAX_STATIC_ROUTES`], and other paths in a direct-mapped table of
//! [`SLOTS`] entries, where a path replaces whatever shared its slot. A path enters the table
//! only the second time its hash is seen in a row at its slot, so a stream of distinct paths
//! (ids that never repeat, a 404 scanner) costs a hash and the walk it would have cost anyway,
//! without copying anything.

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::BuildHasher as _;
use std::rc::Rc;

use actix_web::dev::ServiceRequest;

/// Static routes remembered per worker; past this, they share the table with other paths.
pub(crate) const MAX_STATIC_ROUTES: usize = 256;
/// Entries of the table of recent paths, per worker.
pub(crate) const SLOTS: usize = 512;
/// Longer paths are not remembered (they would make the table's memory unbounded in practice).
const MAX_PATH: usize = 256;

/// Recent answers of `match_pattern()`, per worker (actix builds one middleware per worker,
/// so no lock is needed).
pub(crate) struct Patterns {
    inner: RefCell<Inner>,
}

/// A path, and its pattern (`None`: no route matched).
type Remembered = (Box<str>, Option<Rc<str>>);

struct Inner {
    hasher: foldhash::fast::RandomState,
    static_routes: HashSet<Box<str>, foldhash::fast::RandomState>,
    slots: Box<[Option<Remembered>]>,
    /// Per slot, the hash of the last path that missed there: admission to the slot.
    seen: Box<[u64]>,
}

impl Default for Patterns {
    fn default() -> Self {
        Self {
            inner: RefCell::new(Inner {
                hasher: foldhash::fast::RandomState::default(),
                static_routes: HashSet::default(),
                slots: (0..SLOTS).map(|_| None).collect(),
                seen: vec![0; SLOTS].into_boxed_slice(),
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
    /// Calls `f` with the pattern of `request`'s path (`None`: no route matches), as
    /// `request.match_pattern()` gives it.
    pub(crate) fn with_pattern<T>(
        &self,
        request: &ServiceRequest,
        f: impl FnOnce(Option<&str>) -> T,
    ) -> T {
        let path = request.path();
        let mut inner = self.inner.borrow_mut();
        if inner.static_routes.contains(path) {
            return f(Some(path));
        }
        let slot = (path.len() <= MAX_PATH).then(|| {
            let hash = inner.hasher.hash_one(path);
            #[allow(clippy::cast_possible_truncation)] // only the low bits pick the slot
            (hash as usize % SLOTS, hash)
        });
        if let Some((i, _)) = slot {
            if let Some((seen, pattern)) = &inner.slots[i] {
                if **seen == *path {
                    return f(pattern.as_deref());
                }
            }
        }
        let pattern = request.match_pattern();
        if pattern.as_deref() == Some(path) && inner.static_routes.len() < MAX_STATIC_ROUTES {
            inner.static_routes.insert(path.into());
        } else if let Some((i, hash)) = slot {
            if inner.seen[i] == hash {
                inner.slots[i] = Some((path.into(), pattern.as_deref().map(Rc::from)));
            } else {
                inner.seen[i] = hash;
            }
        }
        drop(inner);
        f(pattern.as_deref())
    }
}
