//! The recorder's options and its registration.

use std::sync::Arc;

use crate::error::Error;
use crate::metric::Buckets;
use crate::registry::Registry;
use crate::util::padded::CachePadded;

use super::recorder::HttpMetrics;
use super::recorder::Inner;
use super::schema::{Families, Naming};

/// Configures [`HttpMetrics`]; made by [`HttpMetrics::builder`].
#[derive(Debug, Clone)]
#[must_use = "nothing is registered until `build` is called"]
pub struct HttpMetricsBuilder {
    pub(super) registry: Registry,
    pub(super) naming: Naming,
    pub(super) buckets: Buckets,
    pub(super) status_classes: bool,
    pub(super) unmatched_route: String,
    pub(super) excluded: Vec<String>,
    pub(super) body_sizes: bool,
    pub(super) series_cap: Option<usize>,
}

impl HttpMetricsBuilder {
    /// Records into this registry instead of the one the builder was made with.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// The registry the metrics are recorded into.
    #[must_use]
    pub fn registry_ref(&self) -> &Registry {
        &self.registry
    }

    /// Sets the naming preset. Defaults to [`Naming::Prometheus`].
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// Sets the latency buckets, in seconds. Defaults to [`Buckets::LATENCY_SECONDS`].
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.buckets = buckets;
        self
    }

    /// Labels statuses by class (`2xx`, `4xx`, ...) instead of by code. Defaults to codes.
    pub fn status_classes(mut self, classes: bool) -> Self {
        self.status_classes = classes;
        self
    }

    /// Sets the route label of requests that no route matched. Defaults to
    /// [`UNMATCHED_ROUTE`](crate::http::route::UNMATCHED_ROUTE).
    pub fn unmatched_route(mut self, value: impl Into<String>) -> Self {
        self.unmatched_route = value.into();
        self
    }

    /// Records nothing for requests to this route template (such as `/health`). Defaults to
    /// none.
    pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
        self.excluded.push(route.into());
        self
    }

    /// Also records request and response body sizes. Defaults to off.
    ///
    /// A request body read to its end records the bytes read; one the service left unread
    /// records its declared `Content-Length`, believed up to
    /// [`DECLARED_LENGTH_LIMIT`](super::DECLARED_LENGTH_LIMIT) (4 GiB), so that no header can
    /// wrap the `_sum`.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.body_sizes = on;
        self
    }

    /// Sets the series cap of each HTTP family. Defaults to the registry's.
    pub fn series_cap(mut self, cap: usize) -> Self {
        self.series_cap = Some(cap);
        self
    }

    /// Registers the families (or finds those a previous build registered with the same
    /// options) and returns the recorder. Building twice on one registry is fine: both
    /// recorders record into the same series.
    ///
    /// # Errors
    ///
    /// A conflict with metrics already registered under the same names with another schema.
    pub fn build(self) -> Result<HttpMetrics, Error> {
        crate::util::clock::init();
        let Families {
            requests,
            duration,
            in_flight,
            request_size,
            response_size,
        } = self.naming.schema().register(
            &self.registry,
            &self.buckets,
            self.body_sizes,
            self.series_cap,
        )?;
        let inner = Inner {
            naming: self.naming,
            status_classes: self.status_classes,
            unmatched: self.unmatched_route.into(),
            excluded: self.excluded.into_iter().map(Into::into).collect(),
            requests,
            duration,
            in_flight,
            request_size,
            response_size,
        };
        Ok(HttpMetrics {
            shared: (0..crate::util::shard::shard_count())
                .map(|_| Arc::new(CachePadded(inner.clone())))
                .collect(),
        })
    }
}
