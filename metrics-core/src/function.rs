//! What `#[instrumented]` expands to: one static [`Site`] per function, a [`Call`] guard per
//! call, and the scrape-time collector that exposes every site of a registry.
//!
//! The hot path touches only the site's own atomics: a count of started calls, then one
//! bucket and the sum of nanoseconds when the call ends. Nothing is looked up or hashed per
//! call. Neither `function_calls_total` nor the in-flight gauge is stored apart: a scrape
//! derives the calls from the bucket counts (like a histogram's `_count`, so the two never
//! disagree) and the calls in flight as started minus finished, which saves the decrement
//! that a gauge would cost every call.
//!
//! The atomics are split into per-thread shards (see [`crate::util::shard`]), allocated at the
//! function's first call: a function called on every core at once would otherwise pass its
//! cache lines from core to core at each call, which cost more than the rest of the call. A
//! thread that owns its shard writes it with plain stores.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use crate::collector::{CollectError, Collector, MetricFamily};
use crate::metric::Buckets;
use crate::metric::MetricValue;
use crate::registry::Registry;
use crate::util::shard::Slots;

/// The upper bounds of the default duration buckets, in seconds
/// ([`Buckets::LATENCY_SECONDS`]).
pub const DEFAULT_BOUNDS: &[f64] = Buckets::LATENCY_SECONDS;

/// The number of buckets of the default bounds, `+Inf` included.
pub const DEFAULT_BUCKETS: usize = 15;

const _: () = assert!(DEFAULT_BOUNDS.len() + 1 == DEFAULT_BUCKETS);

/// The `result` label value of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned, and the value is not an error.
    Ok = 0,
    /// The call returned an error (an `Err`, a 5xx response, or `error_if`), or panicked.
    Error = 1,
    /// The future was dropped before it completed.
    Dropped = 2,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Dropped];

    /// The `result` label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Dropped => "dropped",
        }
    }
}

/// What the macro knows about a function at compile time.
#[derive(Debug)]
pub struct SiteMeta {
    /// The `function` label; for a method whose `impl` the macro does not see, the method's
    /// name, which [`Call::start`] prefixes with the `Self` type it is given.
    pub function: &'static str,
    /// `module_path!()` at the function.
    pub module: &'static str,
    /// The duration buckets' upper bounds, strictly increasing (checked by the macro).
    pub bounds: &'static [f64],
    /// Constant labels, checked by the macro.
    pub labels: &'static [(&'static str, &'static str)],
}

/// One instrumented function's metrics, a `static` in the function's body.
///
/// `B` is the number of buckets, `+Inf` included.
#[derive(Debug)]
pub struct Site<const B: usize> {
    meta: SiteMeta,
    function: OnceLock<Box<str>>,
    /// Set at the first call, with the registration: per shard, the calls started (those in
    /// flight are these minus the bucket counts), then per [`Outcome`] the `B` bucket counts
    /// (not cumulative) and the sum of nanoseconds.
    slots: OnceLock<Slots>,
}

/// Where the count of started calls is in a shard.
const STARTED: usize = 0;

impl<const B: usize> Site<B> {
    /// A site with no calls yet.
    #[must_use]
    pub const fn new(meta: SiteMeta) -> Self {
        Self {
            meta,
            function: OnceLock::new(),
            slots: OnceLock::new(),
        }
    }

    /// Where bucket `bucket` of `outcome` is in a shard; bucket `B` is the sum.
    const fn slot(outcome: Outcome, bucket: usize) -> usize {
        1 + outcome as usize * (B + 1) + bucket
    }

    #[inline]
    fn record(&self, slots: &Slots, outcome: Outcome, nanos: u64) {
        #[allow(clippy::cast_precision_loss)]
        let seconds = nanos as f64 * 1e-9;
        let index = crate::metric::bucket_index(self.meta.bounds, seconds);
        let shard = crate::util::shard::current();
        slots.add(shard, Self::slot(outcome, B), nanos);
        // The bounds come from the macro (B - 1 of them); `min` keeps a bad length in range.
        // Release (as every `add`): a scrape that sees this call finished also sees it
        // started.
        slots.add(shard, Self::slot(outcome, index.min(B - 1)), 1);
    }

    /// Adds the site to its registry, once, and gives its shards.
    #[cold]
    #[inline(never)]
    fn register(
        &'static self,
        registry: &'static Registry,
        self_type: Option<&'static str>,
    ) -> &'static Slots {
        static LOCK: Mutex<()> = Mutex::new(());
        let _lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = self.slots.get() {
            return slots;
        }
        let function = match self_type {
            Some(type_name) => format!("{}::{}", short_type_name(type_name), self.meta.function),
            None => self.meta.function.to_owned(),
        };
        let _ = self.function.set(function.into_boxed_str());
        crate::util::clock::init();
        // Before the site is added, so that a scrape always finds it complete.
        let slots = self
            .slots
            .get_or_init(|| Slots::new(Self::slot(Outcome::Dropped, B) + 1));
        registry
            .view_collector("vitals_functions", FunctionSites::new)
            .add(self);
        slots
    }
}

/// `alloc::vec::Vec<u8>` → `Vec`, `&mut app::Store<T>` → `Store`.
fn short_type_name(full: &str) -> &str {
    let mut name = full.trim_start_matches('&').trim_start();
    name = name.strip_prefix("mut ").unwrap_or(name);
    name = name.strip_prefix("dyn ").unwrap_or(name);
    if name.starts_with(['(', '[']) {
        return name;
    }
    let without_generics = name.split('<').next().unwrap_or(name);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

/// One call in progress: made when the call starts, records when [`finish`](Self::finish)ed
/// or, if the call never finishes (a panic, a dropped future), when dropped.
#[derive(Debug)]
#[must_use = "a call records when it finishes or is dropped"]
pub struct Call<const B: usize> {
    site: &'static Site<B>,
    slots: &'static Slots,
    /// A reading of [`crate::util::clock`].
    started: u64,
}

impl<const B: usize> Call<B> {
    /// Starts a call: registers the site at its first call, counts the call in flight and
    /// reads the clock. `self_type` gives the `Self` type's name of a method whose `impl` the
    /// macro did not see (the label is then `Type::method`), `None` otherwise.
    #[inline]
    pub fn start(
        site: &'static Site<B>,
        registry: impl FnOnce() -> &'static Registry,
        self_type: impl FnOnce() -> Option<&'static str>,
    ) -> Self {
        let slots = match site.slots.get() {
            Some(slots) => slots,
            None => site.register(registry(), self_type()),
        };
        slots.add(crate::util::shard::current(), STARTED, 1);
        Self {
            site,
            slots,
            started: crate::util::clock::now(),
        }
    }

    /// Records the call with this outcome.
    #[inline]
    pub fn finish(self, outcome: Outcome) {
        self.site.record(
            self.slots,
            outcome,
            crate::util::clock::nanos_since(self.started),
        );
        std::mem::forget(self);
    }
}

impl<const B: usize> Drop for Call<B> {
    fn drop(&mut self) {
        // Not finished: the function panicked, or its future was dropped before it completed.
        let outcome = if std::thread::panicking() {
            Outcome::Error
        } else {
            Outcome::Dropped
        };
        self.site.record(
            self.slots,
            outcome,
            crate::util::clock::nanos_since(self.started),
        );
    }
}

/// Calls `f`: makes the closure that wraps a synchronous body `FnOnce`, so that it may return
/// borrows of what it captured, as the function could.
#[inline(always)]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The sites of one registry view, exposed by one collector.
pub(crate) struct FunctionSites {
    sites: RwLock<Vec<&'static dyn SiteRead>>,
}

impl std::fmt::Debug for FunctionSites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .sites
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("FunctionSites").field("sites", &n).finish()
    }
}

impl FunctionSites {
    fn new() -> Self {
        Self {
            sites: RwLock::new(Vec::new()),
        }
    }

    fn add(&self, site: &'static dyn SiteRead) {
        self.sites
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(site);
    }
}

/// A site's figures, whatever its bucket count.
trait SiteRead: Send + Sync {
    fn meta(&self) -> &SiteMeta;
    fn function(&self) -> &str;
    /// Calls started so far; read after the buckets, it is at least their total.
    fn started(&self) -> u64;
    /// Per-bucket counts (not cumulative) and the sum in nanoseconds.
    fn read(&self, outcome: Outcome, counts: &mut Vec<u64>) -> u64;
}

impl<const B: usize> SiteRead for Site<B> {
    fn meta(&self) -> &SiteMeta {
        &self.meta
    }

    fn function(&self) -> &str {
        self.function.get().map_or(self.meta.function, |f| f)
    }

    fn started(&self) -> u64 {
        self.slots.get().map_or(0, |slots| slots.total(STARTED))
    }

    fn read(&self, outcome: Outcome, counts: &mut Vec<u64>) -> u64 {
        counts.clear();
        let Some(slots) = self.slots.get() else {
            counts.resize(B, 0);
            return 0;
        };
        counts.extend((0..B).map(|bucket| slots.total(Self::slot(outcome, bucket))));
        slots.total(Self::slot(outcome, B))
    }
}

/// The figures of one label set, merged over the sites that share it.
struct Series<'a> {
    labels: Vec<(&'a str, &'a str)>,
    bounds: &'a [f64],
    concurrent: u64,
    /// Per outcome: per-bucket counts and the sum in nanoseconds.
    results: [(Vec<u64>, u64); 3],
}

impl Collector for Arc<FunctionSites> {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        let sites = self.sites.read().unwrap_or_else(PoisonError::into_inner);
        let mut merged: Vec<Series<'_>> = Vec::with_capacity(sites.len());
        let mut counts = Vec::new();
        for site in sites.iter() {
            let meta = site.meta();
            let mut labels = vec![("function", site.function()), ("module", meta.module)];
            labels.extend(meta.labels.iter().copied());
            // Two sites with one label set (the same name given twice, say) are one series.
            // Their buckets must agree to be added; a site whose buckets differ is left out.
            let index = match merged.iter().position(|s| s.labels == labels) {
                Some(i) if merged[i].bounds == meta.bounds => i,
                Some(_) => continue,
                None => {
                    merged.push(Series {
                        labels,
                        bounds: meta.bounds,
                        concurrent: 0,
                        results: Default::default(),
                    });
                    merged.len() - 1
                }
            };
            let series = &mut merged[index];
            let mut finished = 0;
            for outcome in Outcome::ALL {
                let sum = site.read(outcome, &mut counts);
                finished += counts.iter().sum::<u64>();
                let (total, total_sum) = &mut series.results[outcome as usize];
                if total.is_empty() {
                    total.resize(counts.len(), 0);
                }
                for (t, c) in total.iter_mut().zip(&counts) {
                    *t += c;
                }
                *total_sum = total_sum.saturating_add(sum);
            }
            series.concurrent += site.started().saturating_sub(finished);
        }

        let mut calls = MetricFamily::counter(
            "function_calls_total",
            "Calls of functions instrumented with #[instrumented], by result.",
        );
        let mut durations = MetricFamily::histogram(
            "function_calls_duration_seconds",
            "Duration of calls of functions instrumented with #[instrumented], by result.",
        )
        .with_unit("seconds");
        let mut concurrent = MetricFamily::gauge(
            "function_calls_concurrent",
            "Calls of functions instrumented with #[instrumented] in progress.",
        );
        for series in &merged {
            concurrent.add_sample(&series.labels, MetricValue::gauge(series.concurrent));
            for outcome in Outcome::ALL {
                let (counts, sum_nanos) = &series.results[outcome as usize];
                let count: u64 = counts.iter().sum();
                // `ok` and `error` are there from the first call, so that error ratios are
                // 0 rather than absent; `dropped` appears when it happens.
                if outcome == Outcome::Dropped && count == 0 {
                    continue;
                }
                let mut labels = series.labels.clone();
                labels.push(("result", outcome.label()));
                calls.add_sample(&labels, MetricValue::counter(count));
                let mut cumulative = 0;
                let buckets = series.bounds.iter().zip(counts).map(|(&bound, &c)| {
                    cumulative += c;
                    (bound, cumulative)
                });
                let buckets: Vec<(f64, u64)> = buckets.collect();
                #[allow(clippy::cast_precision_loss)]
                let sum = *sum_nanos as f64 / 1e9;
                durations.add_sample(&labels, MetricValue::histogram(buckets, count, sum));
            }
        }
        Ok(vec![calls, durations, concurrent])
    }
}

/// Outcome classification by autoref specialisation: `(&&&&&Classify(&value)).__vitals_outcome()`
/// picks the most specific impl that applies to the value's type, at compile time.
pub mod outcome {
    use super::Outcome;

    /// A returned value, to be classified.
    #[derive(Debug)]
    pub struct Classify<'a, T: ?Sized>(pub &'a T);

    /// Values whose status says whether they are a server error: HTTP responses and status
    /// codes (behind the `http` and `actix-web` features).
    pub trait ServerError {
        /// Whether the value is a 5xx response.
        fn is_server_error(&self) -> bool;
    }

    /// `Result<R, E>` where `R` has a status: `Err`, or `Ok` with a 5xx status, is an error.
    pub trait ResultOfResponse {
        /// The outcome.
        fn __vitals_outcome(&self) -> Outcome;
    }
    impl<R: ServerError, E> ResultOfResponse for &&&&Classify<'_, Result<R, E>> {
        #[inline]
        fn __vitals_outcome(&self) -> Outcome {
            match self.0 {
                Ok(r) if !r.is_server_error() => Outcome::Ok,
                _ => Outcome::Error,
            }
        }
    }

    /// A response or status code: 5xx is an error.
    pub trait Response {
        /// The outcome.
        fn __vitals_outcome(&self) -> Outcome;
    }
    impl<R: ServerError> Response for &&&Classify<'_, R> {
        #[inline]
        fn __vitals_outcome(&self) -> Outcome {
            if self.0.is_server_error() {
                Outcome::Error
            } else {
                Outcome::Ok
            }
        }
    }

    /// actix-web's `(body, StatusCode)`: 5xx is an error. (Apart from [`Response`] because
    /// `(http::StatusCode, T)` would overlap it.)
    pub trait StatusLast {
        /// The outcome.
        fn __vitals_outcome(&self) -> Outcome;
    }
    #[cfg(feature = "actix-web")]
    impl<T> StatusLast for &&Classify<'_, (T, actix_web::http::StatusCode)> {
        #[inline]
        fn __vitals_outcome(&self) -> Outcome {
            from_predicate(self.0 .1.is_server_error())
        }
    }

    /// Any `Result`: `Err` is an error.
    pub trait AnyResult {
        /// The outcome.
        fn __vitals_outcome(&self) -> Outcome;
    }
    impl<T, E> AnyResult for &Classify<'_, Result<T, E>> {
        #[inline]
        fn __vitals_outcome(&self) -> Outcome {
            if self.0.is_err() {
                Outcome::Error
            } else {
                Outcome::Ok
            }
        }
    }

    /// Anything else: returning is success.
    pub trait Anything {
        /// The outcome.
        fn __vitals_outcome(&self) -> Outcome;
    }
    impl<T: ?Sized> Anything for Classify<'_, T> {
        #[inline]
        fn __vitals_outcome(&self) -> Outcome {
            Outcome::Ok
        }
    }

    /// The outcome a user predicate gives: `ok_if` and `error_if`.
    #[inline]
    #[must_use]
    pub fn from_predicate(is_error: bool) -> Outcome {
        if is_error {
            Outcome::Error
        } else {
            Outcome::Ok
        }
    }

    #[cfg(feature = "http")]
    mod http_impls {
        use super::ServerError;

        impl<B> ServerError for http::Response<B> {
            fn is_server_error(&self) -> bool {
                self.status().is_server_error()
            }
        }
        impl ServerError for http::StatusCode {
            fn is_server_error(&self) -> bool {
                http::StatusCode::is_server_error(self)
            }
        }
        impl<T> ServerError for (http::StatusCode, T) {
            fn is_server_error(&self) -> bool {
                self.0.is_server_error()
            }
        }
    }

    #[cfg(feature = "actix-web")]
    mod actix_impls {
        use super::ServerError;

        impl<B> ServerError for actix_web::HttpResponse<B> {
            fn is_server_error(&self) -> bool {
                self.status().is_server_error()
            }
        }
        impl ServerError for actix_web::http::StatusCode {
            fn is_server_error(&self) -> bool {
                actix_web::http::StatusCode::is_server_error(self)
            }
        }
    }
}

#[cfg(test)]
// The borrows are the point: they pick the impl, as in the macro's expansion.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_paths_generics_and_references() {
        assert_eq!(short_type_name("alloc::vec::Vec<u8>"), "Vec");
        assert_eq!(short_type_name("&mut app::store::Store<T, U>"), "Store");
        assert_eq!(short_type_name("app::Plain"), "Plain");
        assert_eq!(short_type_name("[u8]"), "[u8]");
        assert_eq!(short_type_name("(i32, app::X)"), "(i32, app::X)");
    }

    #[test]
    fn outcomes_follow_the_most_specific_rule() {
        use outcome::*;
        let ok: Result<u8, ()> = Ok(1);
        let err: Result<u8, ()> = Err(());
        assert_eq!((&&&&&Classify(&ok)).__vitals_outcome(), Outcome::Ok);
        assert_eq!((&&&&&Classify(&err)).__vitals_outcome(), Outcome::Error);
        assert_eq!((&&&&&Classify(&5_u8)).__vitals_outcome(), Outcome::Ok);
        assert_eq!((&&&&&Classify("text")).__vitals_outcome(), Outcome::Ok);
    }

    #[cfg(feature = "http")]
    #[test]
    fn server_error_statuses_are_errors() {
        use outcome::*;
        let teapot = http::StatusCode::IM_A_TEAPOT;
        let broken = http::StatusCode::BAD_GATEWAY;
        assert_eq!((&&&&&Classify(&teapot)).__vitals_outcome(), Outcome::Ok);
        assert_eq!((&&&&&Classify(&broken)).__vitals_outcome(), Outcome::Error);
        assert_eq!(
            (&&&&&Classify(&(broken, "x"))).__vitals_outcome(),
            Outcome::Error
        );
        let ok_but_500: Result<http::StatusCode, ()> = Ok(http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            (&&&&&Classify(&ok_but_500)).__vitals_outcome(),
            Outcome::Error
        );
        let response = http::Response::builder().status(503).body(()).unwrap();
        assert_eq!(
            (&&&&&Classify(&response)).__vitals_outcome(),
            Outcome::Error
        );
    }

    static SITE: Site<DEFAULT_BUCKETS> = Site::new(SiteMeta {
        function: "work",
        module: "tests",
        bounds: DEFAULT_BOUNDS,
        labels: &[("team", "core")],
    });

    #[test]
    fn a_site_counts_calls_errors_drops_and_in_flight() {
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let call = Call::start(&SITE, || registry, || None);
        assert_eq!(
            registry.get_sample_value(
                "function_calls_concurrent",
                &[("function", "work"), ("module", "tests"), ("team", "core")]
            ),
            Some(1.0)
        );
        call.finish(Outcome::Ok);
        Call::start(&SITE, || registry, || None).finish(Outcome::Error);
        drop(Call::start(&SITE, || registry, || None));
        let value = |name: &str, result: &str| {
            registry.get_sample_value(
                name,
                &[
                    ("function", "work"),
                    ("module", "tests"),
                    ("team", "core"),
                    ("result", result),
                ],
            )
        };
        assert_eq!(value("function_calls_total", "ok"), Some(1.0));
        assert_eq!(value("function_calls_total", "error"), Some(1.0));
        assert_eq!(value("function_calls_total", "dropped"), Some(1.0));
        assert_eq!(
            value("function_calls_duration_seconds_count", "ok"),
            Some(1.0)
        );
        assert_eq!(
            registry.get_sample_value(
                "function_calls_concurrent",
                &[("function", "work"), ("module", "tests"), ("team", "core")]
            ),
            Some(0.0)
        );
    }
}
