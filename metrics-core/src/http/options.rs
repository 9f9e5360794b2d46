//! The recorder's options as methods of an adapter's builder.

/// The recorder's options as methods of an adapter's builder that keeps its
/// [`HttpMetricsBuilder`] in the field `$field`, written once so that vitals-tower and
/// vitals-actix offer the same options with the same defaults. Used inside the adapter's
/// `impl` block; not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __http_recorder_options {
    ($field:ident) => {
        /// Records into this registry (a sub-registry view applies its prefix and labels).
        /// Defaults to [`Registry::global`](vitals_core::Registry::global).
        pub fn registry(mut self, registry: &$crate::Registry) -> Self {
            self.$field = self.$field.registry(registry);
            self
        }

        /// Sets the naming preset. Defaults to
        /// [`Naming::Prometheus`](vitals_core::http::Naming::Prometheus).
        pub fn naming(mut self, naming: $crate::http::Naming) -> Self {
            self.$field = self.$field.naming(naming);
            self
        }

        /// Sets the latency buckets, in seconds. Defaults to
        /// [`Buckets::LATENCY_SECONDS`](vitals_core::Buckets::LATENCY_SECONDS).
        pub fn buckets(mut self, buckets: $crate::Buckets) -> Self {
            self.$field = self.$field.buckets(buckets);
            self
        }

        /// Labels statuses `2xx`, `4xx`, ... instead of by code. Defaults to codes.
        pub fn status_classes(mut self, classes: bool) -> Self {
            self.$field = self.$field.status_classes(classes);
            self
        }

        /// Sets the route label of requests no route matched. Defaults to
        /// [`UNMATCHED_ROUTE`](vitals_core::route::UNMATCHED_ROUTE).
        pub fn unmatched_route(mut self, value: impl Into<String>) -> Self {
            self.$field = self.$field.unmatched_route(value);
            self
        }

        /// Records nothing for this route template (such as `/health`). Defaults to none.
        pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
            self.$field = self.$field.exclude_route(route);
            self
        }

        /// Sets the series cap of each HTTP family. Defaults to the registry's.
        pub fn series_cap(mut self, cap: usize) -> Self {
            self.$field = self.$field.series_cap(cap);
            self
        }
    };
}
