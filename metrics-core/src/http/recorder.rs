//! The recorder: where a request starts, on the shard of the thread serving it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use crate::family::Family;
use crate::http::route::UNMATCHED_ROUTE;
use crate::metric::Buckets;
use crate::registry::Registry;
use crate::util::{padded::CachePadded, shard::Shard};

use super::builder::HttpMetricsBuilder;
use super::guard::RequestGuard;
use super::guard::{Target, NO_STATUS};
use super::hint::RouteHint;
use super::hint::{Bound, RouteSeries};
use super::in_flight::InFlight;
use super::method::{method_index, METHODS};
use super::schema::Naming;
use super::sharded::{ShardedCounter, ShardedHistogram};

/// Records the golden signals of HTTP requests into a registry. A cheap handle: clones share
/// the same families.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// The same recorder once per shard (see [`crate::util::shard`]): each request's guard holds
    /// its thread's copy, so that taking and dropping the reference writes a count on no
    /// other thread's cache line.
    pub(super) shared: Arc<[Shared]>,
}

/// A recorder as a request's guard holds it, on cache lines of its own.
pub(super) type Shared = Arc<CachePadded<Inner>>;

#[derive(Debug, Clone)]
pub(super) struct Inner {
    pub(super) naming: Naming,
    pub(super) status_classes: bool,
    pub(super) unmatched: Arc<str>,
    /// Usually empty or a few routes: a scan beats hashing every request's route.
    pub(super) excluded: Box<[Box<str>]>,
    pub(super) requests: Option<Family<ShardedCounter>>,
    pub(super) duration: Family<ShardedHistogram>,
    pub(super) in_flight: Family<InFlight>,
    pub(super) request_size: Option<Family<ShardedHistogram>>,
    pub(super) response_size: Option<Family<ShardedHistogram>>,
}

impl Inner {
    pub(super) fn is_excluded(&self, route: &str) -> bool {
        self.excluded.iter().any(|excluded| **excluded == *route)
    }
}

impl HttpMetrics {
    /// Starts configuring a recorder of `registry` (see [`HttpMetricsBuilder`] for defaults).
    pub fn builder(registry: &Registry) -> HttpMetricsBuilder {
        HttpMetricsBuilder {
            registry: registry.clone(),
            naming: Naming::default(),
            buckets: Buckets::default(),
            status_classes: false,
            unmatched_route: UNMATCHED_ROUTE.to_owned(),
            excluded: Vec::new(),
            body_sizes: false,
            series_cap: None,
        }
    }

    /// A request arrives: counts it in flight now and returns the guard that records it.
    /// `route` is the route template if already known (`None` for unmatched, or set it later
    /// with [`RequestGuard::set_route`]).
    #[must_use = "the request is recorded when the guard finishes or drops"]
    pub fn start(&self, method: &str, route: Option<&str>) -> RequestGuard {
        let shard = crate::util::shard::current();
        let (shared, route, mut guard) = self.begin(shard, method, route);
        if let Some(shared) = shared {
            guard.enter(shared, route, shard);
        }
        guard
    }

    /// [`start`](Self::start) for an adapter that keeps a [`RouteHint`] per route: the
    /// first request of each method (on each shard) finds the route's in-flight series by its
    /// labels, and the first of each status its counter and histogram; the hint keeps them,
    /// so that the next requests go straight to them.
    ///
    /// A hint binds to the recorder and the route of its second request (its first is looked
    /// up, so that a hint used once costs nothing more than `start`). Given with another
    /// recorder or another route, it is not used, and the request is looked up as by
    /// [`start`](Self::start): still right, only not faster.
    ///
    /// ```
    /// use vitals_core::http::{HttpMetrics, RouteHint};
    /// use vitals_core::Registry;
    ///
    /// let registry = Registry::new();
    /// let metrics = HttpMetrics::builder(&registry).build()?;
    /// // Kept with the route, for as long as the route is served.
    /// let users = RouteHint::new();
    /// for _ in 0..3 {
    ///     let mut request = metrics.start_hinted("GET", Some("/users/{id}"), &users);
    ///     request.response(200);
    ///     request.finish();
    /// }
    /// let labels = [("method", "GET"), ("route", "/users/{id}"), ("status", "200")];
    /// assert_eq!(registry.get_sample_value("http_requests_total", &labels), Some(3.0));
    /// # Ok::<(), vitals_core::Error>(())
    /// ```
    #[must_use = "the request is recorded when the guard finishes or drops"]
    pub fn start_hinted(
        &self,
        method: &str,
        route: Option<&str>,
        hint: &RouteHint,
    ) -> RequestGuard {
        let shard = crate::util::shard::current();
        let (shared, route, mut guard) = self.begin(shard, method, route);
        let Some(shared) = shared else {
            return guard;
        };
        let bound = match hint.bound.get() {
            Some(bound) => bound,
            // A hint's first request is looked up, as by `start`: a hint that never sees a
            // second one (axum re-applies the layers of a router that is not served through
            // `with_state` for every request, each time with a new hint) costs nothing more.
            None if !hint.used.load(Ordering::Relaxed) => {
                hint.used.store(true, Ordering::Relaxed);
                guard.enter(shared, route, shard);
                return guard;
            }
            None => hint.bound.get_or_init(|| Bound {
                recorder: Arc::clone(&self.shared),
                route: route.into(),
                series: (0..METHODS.len() * self.shared.len())
                    .map(|_| OnceLock::new())
                    .collect(),
            }),
        };
        if !Arc::ptr_eq(&bound.recorder, &self.shared) || *bound.route != *route {
            guard.enter(shared, route, shard);
            return guard;
        }
        // One per method and shard: each shard's requests take and drop their own reference.
        let slot = &bound.series[usize::from(guard.method) * self.shared.len() + shard.index()];
        let series = match slot.get() {
            Some(series) => series,
            None => {
                // The first request of this method on this shard: the one lookup.
                let found = shared.in_flight.index_of(&[guard.method(), route]);
                match found {
                    Ok(index) if index.get().is_some() => {
                        slot.get_or_init(|| Arc::new(RouteSeries::new(shared, index)))
                    }
                    // The overflow series, which is counted at every lookup: none to keep.
                    _ => {
                        guard.count_in(shared, route, found, shard);
                        return guard;
                    }
                }
            }
        };
        series.in_flight.add(shard, 1);
        guard.target = Target::Route(Arc::clone(series));
        guard
    }

    /// What every start does first: the thread's copy of the recorder (`None` for an
    /// excluded route), the route label, and a guard that records nothing yet.
    #[inline(always)]
    pub(super) fn begin<'a>(
        &'a self,
        shard: Shard,
        method: &str,
        route: Option<&'a str>,
    ) -> (Option<&'a Shared>, &'a str, RequestGuard) {
        // One copy per shard, so the thread's shard indexes it (no division per request).
        let shared = &self.shared[shard.index()];
        let route = route.unwrap_or(&shared.unmatched);
        let guard = RequestGuard {
            target: Target::Off,
            started: crate::util::clock::now(),
            sizes: None,
            status: NO_STATUS,
            method: method_index(method),
            upgraded: false,
        };
        let shared = (!shared.is_excluded(route)).then_some(shared);
        (shared, route, guard)
    }
}
