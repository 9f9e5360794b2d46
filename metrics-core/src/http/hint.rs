//! Per-route hints: series found once and kept with the adapter's route state.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use crate::family::SeriesIndex;

use super::in_flight::InFlight;
use super::recorder::Shared;
use super::sharded::{ShardedCounter, ShardedHistogram};

/// Where one route's series are, for [`HttpMetrics::start_hinted`](crate::http::HttpMetrics::start_hinted): an adapter that keeps
/// state per route (vitals-actix per route pattern, vitals-tower per service that axum's
/// `Router::layer` wraps) keeps one of these with it, and its requests go straight to their
/// series, with neither their labels hashed nor their series looked up. Empty until its
/// second request (the first is looked up); then bound to that request's recorder and route.
/// Shared freely between threads.
#[derive(Debug, Default)]
pub struct RouteHint {
    /// Whether a request came with the hint yet.
    pub(super) used: AtomicBool,
    pub(super) bound: OnceLock<Bound>,
}

impl RouteHint {
    /// An empty hint.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a [`RouteHint`] holds once used.
#[derive(Debug)]
pub(super) struct Bound {
    /// The recorder that used the hint first (its shards' copies, which identify it).
    pub(super) recorder: Arc<[Shared]>,
    /// The route it was used with.
    pub(super) route: Box<str>,
    /// The route's series per method and shard (`method * shards + shard`), found at the
    /// first request of each.
    pub(super) series: Box<[OnceLock<Arc<RouteSeries>>]>,
}

/// One route's series for one method, as one shard's requests reach them: its in-flight
/// series, and the counter and histogram series of the statuses its requests ended with.
///
/// The handles stay right for the recorder's life: its families are its own (no caller can
/// reach them to remove a series), so their series are never removed or reset.
#[derive(Debug)]
pub(super) struct RouteSeries {
    /// The shard's copy of the recorder: requests hold this, not the recorder.
    pub(super) shared: Shared,
    pub(super) in_flight: InFlight,
    /// Where `in_flight` is in its family, whose labels hold the route.
    pub(super) index: SeriesIndex,
    /// The first statuses the route's requests ended with, where their series are; other
    /// statuses are looked up every time.
    pub(super) ends: [OnceLock<End>; ROUTE_ENDS],
}

/// How many statuses per route, method and shard go straight to their series.
pub(super) const ROUTE_ENDS: usize = 6;

/// Where requests that ended with `status` are counted and timed.
#[derive(Debug)]
pub(super) struct End {
    pub(super) status: u16,
    /// `None` with OpenTelemetry naming, whose request count is the histogram's.
    pub(super) requests: Option<ShardedCounter>,
    pub(super) duration: ShardedHistogram,
}

impl RouteSeries {
    /// The route's series, from its in-flight series' `index` in `shared`'s family.
    pub(super) fn new(shared: &Shared, index: SeriesIndex) -> Self {
        Self {
            shared: Arc::clone(shared),
            in_flight: shared.in_flight.series(index).clone(),
            index,
            ends: Default::default(),
        }
    }

    /// The series of requests that ended with `status`, if remembered.
    #[inline]
    pub(super) fn end(&self, status: u16) -> Option<&End> {
        for slot in &self.ends {
            let end = slot.get()?;
            if end.status == status {
                return Some(end);
            }
        }
        None
    }

    /// Remembers the series of `status` (indexes in the recorder's families) in the first
    /// free place, if there is one and none of them is an overflow series.
    pub(super) fn remember(
        &self,
        status: u16,
        requests: Option<SeriesIndex>,
        duration: SeriesIndex,
    ) {
        let metrics = &*self.shared;
        if duration.get().is_none() || requests.is_some_and(|index| index.get().is_none()) {
            return;
        }
        let requests = match (&metrics.requests, requests) {
            (Some(family), Some(index)) => Some(family.series(index).clone()),
            _ => None,
        };
        if let Some(slot) = self.ends.iter().find(|slot| slot.get().is_none()) {
            // Another thread of a shared shard may take the place first: then this status is
            // remembered by the next request that ends with it.
            let _ = slot.set(End {
                status,
                requests,
                duration: metrics.duration.series(duration).clone(),
            });
        }
    }
}
