//! A request being served, from its start to its end or drop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::family::SeriesIndex;
use crate::util::shard::Shard;

use super::hint::RouteSeries;
use super::in_flight::InFlight;
use super::method::METHODS;
use super::recorder::{Inner, Shared};
use super::schema::Naming;
use super::sharded::{ShardedCounter, ShardedHistogram};
use super::{STATUS_CLIENT_CLOSED, STATUS_PANICKED};

/// What a request is recorded into.
#[derive(Debug)]
pub(super) enum Target {
    /// Nothing: an excluded route, or recorded already.
    Off,
    /// A hinted route's series.
    Route(Arc<RouteSeries>),
    /// The shard's copy of the recorder, and where the request is counted in flight.
    Plain(Shared, RouteSlot),
}

/// Where a request's route is: the in-flight series it is counted in, whose label holds the
/// route, so that neither a copy of the route nor a second lookup is needed when the request
/// ends. Only a route that went to the overflow series is kept apart.
#[derive(Debug)]
pub(super) enum RouteSlot {
    /// Not counted in flight (an excluded route, or recorded already).
    Unset,
    /// Counted in the in-flight series at this index.
    Series(SeriesIndex),
    /// Counted in the in-flight overflow series; the route is kept in the guard's
    /// [`Sizes::overflow_route`].
    Overflow(SeriesIndex),
}

/// Request bytes not given yet.
pub(super) const NO_BYTES: u64 = u64::MAX;

/// The largest request body size a declared `Content-Length` is believed for: 4 GiB.
///
/// A body the service never read to its end is recorded by its declared length, which is
/// only the client's claim: `Content-Length: 18446744073709551613` on a request answered 401
/// unread would otherwise wrap the size histogram's integer `_sum`. Declarations count at most
/// this much (far beyond the largest default bucket, 16 MiB), so the sum of a size histogram
/// grows by at most 4 GiB per request and a lie costs one observation in `+Inf`, never the
/// series. Bodies read to the end count their bytes read, whatever was declared.
pub const DECLARED_LENGTH_LIMIT: u64 = 1 << 32;

/// The status of a request whose response has not started.
pub(super) const NO_STATUS: u16 = 0;

/// One request being served; records it when finished or dropped (see the [module
/// docs](crate::http) for what each ending records).
#[derive(Debug)]
pub struct RequestGuard {
    /// [`Target::Off`] for an excluded route, and once recorded: nothing (more) is recorded.
    pub(super) target: Target,
    /// A reading of [`crate::util::clock`].
    pub(super) started: u64,
    /// What only body sizes and the overflow series need, out of line (allocated for the
    /// requests that need it), so that the guard, which moves with the response future and
    /// body several times per request, stays small.
    pub(super) sizes: Option<Box<Sizes>>,
    /// [`NO_STATUS`] until the response starts.
    pub(super) status: u16,
    /// An index into [`METHODS`].
    pub(super) method: u8,
    pub(super) upgraded: bool,
}

/// The parts of a [`RequestGuard`] that most requests do not need.
#[derive(Debug)]
pub(super) struct Sizes {
    /// The route of a request counted in the in-flight overflow series.
    pub(super) overflow_route: Option<Box<str>>,
    /// [`NO_BYTES`] until the adapter gives the request body's size.
    pub(super) request_bytes: u64,
    /// Counts the request body as the service reads it, when the adapter can watch it.
    pub(super) request_counter: Option<BodyCounter>,
    pub(super) response_bytes: u64,
    /// The request's trace, for the exemplars of its counter and latency bucket.
    pub(super) trace: Option<super::trace::TraceContext>,
}

impl RequestGuard {
    /// The out-of-line parts, made at first use.
    pub(super) fn sizes(&mut self) -> &mut Sizes {
        self.sizes.get_or_insert_with(|| {
            Box::new(Sizes {
                overflow_route: None,
                request_bytes: NO_BYTES,
                request_counter: None,
                response_bytes: 0,
                trace: None,
            })
        })
    }

    /// Attaches the request's trace (see [`TraceContext`](super::TraceContext)): when it is
    /// recorded, the request counter and the latency bucket it falls in keep an exemplar with
    /// its `trace_id` and `span_id`.
    ///
    /// Exemplars are samples: of the requests of one method and route, at most one per
    /// millisecond keeps its trace (the first to start after the one before), so that a busy
    /// route pays for a trace a thousand times a second at most, whatever its rate, and a
    /// quiet one keeps every trace. The others, and requests without a trace, allocate
    /// nothing for it.
    pub fn trace_context(&mut self, context: super::trace::TraceContext) {
        if self.trace_due() {
            self.keep_trace(context);
        }
    }

    /// [`trace_context`](Self::trace_context) from the request's `traceparent` header, when
    /// it has a valid one; a malformed one is ignored. The header is only read when the
    /// request may keep its trace.
    ///
    /// With the `opentelemetry` feature, the current OpenTelemetry span comes first
    /// (`TraceContext::current`): a tracing layer outside the adapter has made the
    /// request's server span current, whose span id is this service's (the header's is the
    /// caller's), and which says whether the trace is sampled.
    #[inline]
    pub fn traceparent(&mut self, header: Option<&[u8]>) {
        #[cfg(feature = "opentelemetry")]
        self.traced_request(header);
        #[cfg(not(feature = "opentelemetry"))]
        if let Some(header) = header {
            self.traced_request(Some(header));
        }
    }

    /// Out of line, so that the adapters' request path stays small for untraced requests.
    #[inline(never)]
    fn traced_request(&mut self, header: Option<&[u8]>) {
        if !self.trace_due() {
            return;
        }
        #[cfg(feature = "opentelemetry")]
        if let Some(context) = super::trace::TraceContext::current() {
            return self.keep_trace(context);
        }
        let header = header.and_then(super::trace::TraceContext::from_traceparent_bytes);
        if let Some(context) = header {
            self.keep_trace(context);
        }
    }

    /// Whether the request may keep its trace (see [`trace_context`](Self::trace_context)).
    #[inline]
    fn trace_due(&self) -> bool {
        match &self.target {
            Target::Off => false,
            _ => self
                .in_flight()
                .is_none_or(|in_flight| in_flight.core.traced.due(self.started)),
        }
    }

    fn keep_trace(&mut self, context: super::trace::TraceContext) {
        if let Some(in_flight) = self.in_flight() {
            in_flight.core.traced.kept(self.started);
        }
        self.sizes().trace = Some(context);
    }

    /// The in-flight series the request is counted in, if any.
    #[inline]
    fn in_flight(&self) -> Option<&InFlight> {
        match &self.target {
            Target::Route(series) => Some(&series.in_flight),
            Target::Plain(shared, RouteSlot::Series(index) | RouteSlot::Overflow(index)) => {
                Some(shared.in_flight.series(*index))
            }
            Target::Plain(_, RouteSlot::Unset) | Target::Off => None,
        }
    }

    /// Sets the route once routing knows it (`None`: no route matched); the in-flight count
    /// moves to the new route.
    pub fn set_route(&mut self, route: Option<&str>) {
        let Some(shared) = self.shared().cloned() else {
            return;
        };
        let route = route.unwrap_or(&shared.unmatched);
        if self.route_str() == Some(route) {
            return;
        }
        self.leave();
        self.target = Target::Off;
        if !shared.is_excluded(route) {
            self.enter(&shared, route, crate::util::shard::current());
        }
    }

    /// Counts the request in flight under `route` in `shared`, on the thread's `shard`, by
    /// looking its series up.
    pub(super) fn enter(&mut self, shared: &Shared, route: &str, shard: Shard) {
        let found = shared.in_flight.index_of(&[self.method(), route]);
        self.count_in(shared, route, found, shard);
    }

    /// Counts the request in flight under `route` in the series a lookup `found`.
    pub(super) fn count_in(
        &mut self,
        shared: &Shared,
        route: &str,
        found: Result<SeriesIndex, Error>,
        shard: Shard,
    ) {
        // Label values are never refused: the family takes any string.
        let slot = match found {
            Ok(index) if index.get().is_some() => {
                shared.in_flight.series(index).add(shard, 1);
                RouteSlot::Series(index)
            }
            Ok(index) => {
                shared.in_flight.series(index).add(shard, 1);
                self.sizes().overflow_route = Some(route.into());
                RouteSlot::Overflow(index)
            }
            Err(_) => RouteSlot::Unset,
        };
        self.target = Target::Plain(Arc::clone(shared), slot);
    }

    /// Takes the request out of the in-flight count (the route stays known).
    pub(super) fn leave(&self) {
        match &self.target {
            Target::Route(series) => series.in_flight.add(crate::util::shard::current(), -1),
            Target::Plain(shared, RouteSlot::Series(index) | RouteSlot::Overflow(index)) => {
                shared
                    .in_flight
                    .series(*index)
                    .add(crate::util::shard::current(), -1);
            }
            Target::Plain(_, RouteSlot::Unset) | Target::Off => {}
        }
    }

    /// The shard's copy of the recorder this request is recorded by; `None` when it is not.
    pub(super) fn shared(&self) -> Option<&Shared> {
        match &self.target {
            Target::Off => None,
            Target::Route(series) => Some(&series.shared),
            Target::Plain(shared, _) => Some(shared),
        }
    }

    /// The method label.
    pub(super) fn method(&self) -> &'static str {
        METHODS[usize::from(self.method)]
    }

    /// The route the request is counted under.
    pub(super) fn route_str(&self) -> Option<&str> {
        match &self.target {
            Target::Off | Target::Plain(_, RouteSlot::Unset) => None,
            Target::Route(series) => series.shared.in_flight.label_value(series.index, 1),
            Target::Plain(shared, RouteSlot::Series(index)) => {
                shared.in_flight.label_value(*index, 1)
            }
            Target::Plain(_, RouteSlot::Overflow(_)) => {
                self.sizes.as_ref()?.overflow_route.as_deref()
            }
        }
    }

    /// The response started with this status.
    pub fn response(&mut self, status: u16) {
        self.status = status;
    }

    /// The response's headers are ready with `status` (a `101 Switching Protocols` marks the
    /// connection upgraded): the adapter's `guard` (if it records this request) then goes with
    /// the body until the body ends. With `stop_clock` (the adapters' headers-only option), it
    /// records the request now instead, and `guard` is left empty.
    #[inline]
    pub fn headers_ready(guard: &mut Option<Self>, status: u16, stop_clock: bool) {
        let Some(this) = guard.as_mut() else {
            return;
        };
        this.response(status);
        if status == 101 {
            this.upgraded();
        }
        if stop_clock {
            if let Some(this) = guard.take() {
                this.finish();
            }
        }
    }

    /// A chunk of `bytes` of the response body passed, for the adapter's `guard` carried with
    /// the body.
    #[inline]
    pub fn body_chunk(guard: &mut Option<Self>, bytes: usize) {
        if let Some(this) = guard.as_mut() {
            this.add_response_bytes(u64::try_from(bytes).unwrap_or(u64::MAX));
        }
    }

    /// The response body ended, or failed: the request is recorded now, and `guard` is left
    /// empty so that it is recorded once. (A body dropped before its end records through the
    /// guard's drop instead.)
    #[inline]
    pub fn body_ended(guard: &mut Option<Self>) {
        if let Some(this) = guard.take() {
            this.finish();
        }
    }

    /// The connection was upgraded (WebSocket): the request is counted but its time is not a
    /// latency.
    pub fn upgraded(&mut self) {
        self.upgraded = true;
    }

    /// Adds bytes of the request body. A request whose body size was never given records no
    /// request size (nor does any request when request sizes are not recorded).
    pub fn add_request_bytes(&mut self, n: u64) {
        if !self.records_request_size() {
            return;
        }
        let sizes = self.sizes();
        sizes.request_bytes = match sizes.request_bytes {
            NO_BYTES => n,
            // Saturates below the sentinel.
            bytes => bytes.saturating_add(n).min(NO_BYTES - 1),
        };
    }

    /// Whether this request's body size is recorded (the recorder was built with body
    /// sizes on, and the route is not excluded): adapters skip watching the body otherwise.
    #[must_use]
    #[inline]
    pub fn records_request_size(&self) -> bool {
        self.shared().is_some_and(|m| m.request_size.is_some())
    }

    /// A counter for the adapter to add the request body's bytes to as the service reads
    /// them, and to [`end`](BodyCounter::end) when the body reached its end. A body read to
    /// its end records the bytes read; one the handler stopped reading early (or never read)
    /// records the larger of the bytes read and the declared `Content-Length`, the latter at
    /// most [`DECLARED_LENGTH_LIMIT`].
    pub fn count_request_body(&mut self) -> BodyCounter {
        self.sizes()
            .request_counter
            .get_or_insert_with(|| BodyCounter(Arc::new(AtomicU64::new(0))))
            .clone()
    }

    /// Takes the request body's size from its `Content-Length` header, when it has a valid
    /// one. Adapters that cannot watch the request body without changing the request type
    /// the inner service accepts measure by declared length only; then a request without one
    /// (a chunked upload) records no request size.
    ///
    /// The header is read (`content_length` called) only when this request's body size is
    /// recorded: with body sizes off, no request pays for the lookup.
    #[inline]
    pub fn declared_request_length<'h>(
        &mut self,
        content_length: impl FnOnce() -> Option<&'h str>,
    ) {
        if self.records_request_size() {
            self.declare_request_length(content_length());
        }
    }

    pub(super) fn declare_request_length(&mut self, content_length: Option<&str>) {
        if let Some(length) = content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
            self.add_request_bytes(length.min(DECLARED_LENGTH_LIMIT));
        }
    }

    /// Adds bytes of the response body (nothing when response sizes are not recorded).
    #[inline]
    pub fn add_response_bytes(&mut self, n: u64) {
        if self.shared().is_some_and(|m| m.response_size.is_some()) {
            let sizes = self.sizes();
            sizes.response_bytes = sizes.response_bytes.saturating_add(n);
        }
    }

    /// The response body ended: records the request.
    pub fn finish(self) {
        // Recorded here, so the drop has nothing to record: skip it, and drop what is left.
        let mut this = std::mem::ManuallyDrop::new(self);
        this.record(false);
        drop(this.sizes.take());
    }

    /// Records the request, once; `dropped` when the guard is dropped unfinished (then a
    /// panicking thread means a panicking handler).
    pub(super) fn record(&mut self, dropped: bool) {
        if matches!(self.target, Target::Off) {
            return;
        }
        let status = if dropped && std::thread::panicking() {
            STATUS_PANICKED
        } else {
            match self.status {
                NO_STATUS => STATUS_CLIENT_CLOSED,
                status => status,
            }
        };
        self.record_as(status);
        self.target = Target::Off;
    }

    pub(super) fn record_as(&self, status: u16) {
        let elapsed_nanos = crate::util::clock::nanos_since(self.started);
        let shard = crate::util::shard::current();
        let (metrics, (counter, histogram)) = match &self.target {
            Target::Off => return,
            Target::Route(series) => {
                series.in_flight.add(shard, -1);
                let ends = match series.end(status) {
                    Some(end) => (end.requests.as_ref(), Some(&end.duration)),
                    None => self.look_up_ends(&series.shared, status, Remember::Route(series)),
                };
                (&**series.shared, ends)
            }
            Target::Plain(shared, route) => {
                // The in-flight series, found once: counted out of, then asked (unless it is
                // the overflow series, which remembers nothing) where this route's requests
                // end.
                let remembering = match route {
                    RouteSlot::Unset => None,
                    RouteSlot::Series(index) | RouteSlot::Overflow(index) => {
                        let in_flight = shared.in_flight.series(*index);
                        in_flight.add(shard, -1);
                        matches!(route, RouteSlot::Series(_)).then_some(in_flight)
                    }
                };
                let remembered = remembering
                    .and_then(|in_flight| Self::remembered_ends(shared, in_flight, status));
                let ends = match (remembered, remembering) {
                    (Some(ends), _) => ends,
                    (None, Some(in_flight)) => {
                        self.look_up_ends(shared, status, Remember::InFlight(in_flight))
                    }
                    (None, None) => self.look_up_ends(shared, status, Remember::Nothing),
                };
                (&***shared, ends)
            }
        };
        if let Some(counter) = counter {
            counter.inc(shard);
        }
        // An upgraded connection's life is not a latency: it stays out of the histogram
        // (with OpenTelemetry naming, whose request count is the histogram's, it is not
        // counted either).
        let observed = match (self.upgraded, histogram) {
            (false, Some(histogram)) => {
                Some((histogram, histogram.observe_units(shard, elapsed_nanos)))
            }
            _ => None,
        };
        if let Some(trace) = self.sizes.as_ref().and_then(|s| s.trace.as_ref()) {
            if let Some(counter) = counter {
                counter.set_exemplar(trace);
            }
            if let Some((histogram, bucket)) = observed {
                histogram.set_exemplar(trace, bucket, elapsed_nanos);
            }
        }
        if metrics.request_size.is_none() && metrics.response_size.is_none() {
            return;
        }
        let route = self.end_route(metrics, status);
        for (family, bytes) in [
            (&metrics.request_size, self.request_size()),
            (
                &metrics.response_size,
                Some(self.sizes.as_ref().map_or(0, |s| s.response_bytes)),
            ),
        ] {
            let (Some(family), Some(bytes)) = (family, bytes) else {
                continue;
            };
            if let Ok(histogram) = family.with_label_values(&[self.method(), route]) {
                histogram.observe_units(shard, bytes);
            }
        }
    }

    /// The request size to record: the bytes read of a body read to its end; otherwise the
    /// larger of the bytes read and the (bounded) declared length.
    pub(super) fn request_size(&self) -> Option<u64> {
        let sizes = self.sizes.as_deref()?;
        let declared = (sizes.request_bytes != NO_BYTES).then_some(sizes.request_bytes);
        match &sizes.request_counter {
            Some(counter) if counter.ended() => Some(counter.get()),
            Some(counter) => Some(counter.get().max(declared.unwrap_or(0))),
            None => declared,
        }
    }

    /// The route a request that ended with `status` is recorded under: a 405 means no route
    /// took the method, so it counts with the requests no route matched.
    pub(super) fn end_route<'a>(&'a self, metrics: &'a Inner, status: u16) -> &'a str {
        if status == 405 {
            &metrics.unmatched
        } else {
            self.route_str().unwrap_or(&metrics.unmatched)
        }
    }

    /// The series this route's requests ending with `status` went to before, as the in-flight
    /// series remembers them: no hashing, no label comparison.
    #[inline]
    pub(super) fn remembered_ends<'a>(
        metrics: &'a Inner,
        in_flight: &InFlight,
        status: u16,
    ) -> Option<(Option<&'a ShardedCounter>, Option<&'a ShardedHistogram>)> {
        let (requests, duration) = in_flight.ends(status)?;
        let counter = match (&metrics.requests, requests) {
            (Some(family), Some(index)) => Some(family.live_series(index)?),
            (None, None) => None,
            _ => return None,
        };
        Some((counter, Some(metrics.duration.live_series(duration)?)))
    }

    /// Looks the series of this request's end up by their labels, and has `remember`
    /// remember where they are. An upgraded request has no histogram series (its time is not
    /// a latency), so nothing is remembered for it.
    #[cold]
    pub(super) fn look_up_ends<'a>(
        &self,
        metrics: &'a Inner,
        status: u16,
        remember: Remember<'_>,
    ) -> (Option<&'a ShardedCounter>, Option<&'a ShardedHistogram>) {
        let mut code = itoa::Buffer::new();
        let class_digits;
        let status_label: &str = if metrics.status_classes {
            // Statuses are three digits (100 to 999); the class is the first and `xx`.
            #[allow(clippy::cast_possible_truncation)]
            let first = b'0' + (status / 100 % 10) as u8;
            class_digits = [first, b'x', b'x'];
            std::str::from_utf8(&class_digits).unwrap_or("xxx")
        } else {
            code.format(status)
        };
        let route = self.end_route(metrics, status);
        let method = self.method();
        // Label values are never refused: the families take any string of the right count.
        let requests = metrics.requests.as_ref().and_then(|family| {
            let index = family.index_of(&[method, route, status_label]).ok()?;
            Some((family, index))
        });
        let counter = requests.map(|(family, index)| family.series(index));
        if self.upgraded {
            return (counter, None);
        }
        let mut error_code = itoa::Buffer::new();
        let duration_index = match metrics.naming {
            Naming::Prometheus => metrics.duration.index_of(&[method, route, status_label]),
            Naming::OpenTelemetry => {
                let error_type = match status {
                    STATUS_CLIENT_CLOSED => "cancelled",
                    500..=599 => error_code.format(status),
                    _ => "",
                };
                metrics
                    .duration
                    .index_of(&[method, route, status_label, error_type])
            }
        };
        let Ok(duration_index) = duration_index else {
            return (counter, None);
        };
        let requests = requests.map(|(_, index)| index);
        match remember {
            Remember::Route(series) => series.remember(status, requests, duration_index),
            Remember::InFlight(in_flight) => in_flight.remember(status, requests, duration_index),
            Remember::Nothing => {}
        }
        (counter, Some(metrics.duration.series(duration_index)))
    }
}

/// Where [`RequestGuard::look_up_ends`] remembers the series it found.
pub(super) enum Remember<'a> {
    /// A hinted route's own series.
    Route(&'a RouteSeries),
    /// The in-flight series of a request that was looked up.
    InFlight(&'a InFlight),
    /// Nowhere: the in-flight series is the overflow series.
    Nothing,
}

/// Counts the bytes of a request body as the service reads it; made by
/// [`RequestGuard::count_request_body`]. Clones count into the same total.
#[derive(Debug, Clone)]
pub struct BodyCounter(Arc<AtomicU64>);

/// The counter's top bit: the body reached its end. The bytes below it cannot reach it
/// (2^63 bytes is more than any body).
const BODY_ENDED: u64 = 1 << 63;

impl BodyCounter {
    /// Adds `n` bytes read.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n.min(BODY_ENDED - 1), Ordering::Relaxed);
    }

    /// The body reached its end: every byte of it was counted.
    #[inline]
    pub fn end(&self) {
        self.0.fetch_or(BODY_ENDED, Ordering::Relaxed);
    }

    /// The bytes counted so far.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed) & !BODY_ENDED
    }

    /// Whether the body reached its end.
    #[must_use]
    pub fn ended(&self) -> bool {
        self.0.load(Ordering::Relaxed) & BODY_ENDED != 0
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.record(true);
    }
}
