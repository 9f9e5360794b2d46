//! The options every adapter's builder offers, written once.

/// The options every adapter's builder offers, as methods of a builder that keeps its
/// [`AdapterOptions`](crate::http::AdapterOptions) in the field `$field`, so that vitals-tower
/// and vitals-actix offer the same options with the same defaults. Used inside the adapter's
/// `impl` block; not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __http_recorder_options {
    ($field:ident) => {
        /// Records into this registry (a sub-registry view applies its prefix and labels),
        /// and serves it. Defaults to the process-wide registry, `Registry::global()`.
        pub fn registry(mut self, registry: &$crate::Registry) -> Self {
            self.$field = self.$field.http(|h| h.registry(registry));
            self
        }

        /// Sets the naming preset. Defaults to `Naming::Prometheus`.
        pub fn naming(mut self, naming: $crate::http::Naming) -> Self {
            self.$field = self.$field.http(|h| h.naming(naming));
            self
        }

        /// Sets the latency buckets, in seconds. Defaults to `Buckets::LATENCY_SECONDS`.
        pub fn buckets(mut self, buckets: $crate::Buckets) -> Self {
            self.$field = self.$field.http(|h| h.buckets(buckets));
            self
        }

        /// Labels statuses `2xx`, `4xx`, ... instead of by code. Defaults to codes.
        pub fn status_classes(mut self, classes: bool) -> Self {
            self.$field = self.$field.http(|h| h.status_classes(classes));
            self
        }

        /// Sets the route label of requests no route matched. Defaults to
        /// `route::UNMATCHED_ROUTE`.
        pub fn unmatched_route(mut self, value: impl Into<String>) -> Self {
            self.$field = self.$field.http(|h| h.unmatched_route(value));
            self
        }

        /// Records nothing for this route template (such as `/health`). Defaults to none.
        pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
            self.$field = self.$field.http(|h| h.exclude_route(route));
            self
        }

        /// Sets the series cap of each HTTP family. Defaults to the registry's.
        pub fn series_cap(mut self, cap: usize) -> Self {
            self.$field = self.$field.http(|h| h.series_cap(cap));
            self
        }

        /// Sets the path of the metrics endpoint, or `None` to serve none. Defaults to
        /// `/metrics`.
        pub fn endpoint(mut self, path: Option<&str>) -> Self {
            self.$field = self.$field.endpoint(path);
            self
        }

        /// Whether requests to the metrics endpoint are recorded too. Defaults to no.
        pub fn count_endpoint(mut self, count: bool) -> Self {
            self.$field = self.$field.count_endpoint(count);
            self
        }

        /// Whether OpenMetrics answers carry `_created` samples. Defaults to off: Prometheus
        /// 2.x stores each as a series of its own.
        pub fn created_samples(mut self, on: bool) -> Self {
            self.$field = self.$field.created_samples(on);
            self
        }

        /// Stops the clock when the response headers are ready instead of when the body
        /// ends. Defaults to off: latency covers the whole body.
        pub fn headers_only(mut self, on: bool) -> Self {
            self.$field = self.$field.headers_only(on);
            self
        }

        /// Serves the live page below the metrics endpoint: `/metrics/live` draws the golden
        /// signals of each route and `#[instrumented]` function over the last five minutes,
        /// from `/metrics/live.json`, behind the endpoint's access hook. Turns the registry's
        /// windowed statistics on (`vitals_core::window`) and starts their ticker, a thread
        /// that ticks every second. Defaults to off.
        pub fn live(mut self, on: bool) -> Self {
            self.$field = self.$field.live(on);
            self
        }
    };
}
