//! [`PoolCollector`]: the connections of any pool (deadpool, bb8, sqlx, r2d2, one of your
//! own), read through a closure at each scrape.

use std::sync::{Arc, Mutex, PoisonError};

use crate::metric::MetricValue;

use super::{CollectError, Collector, MetricFamily};

/// What a pool reports at a scrape: its connections, and what it knows of the callers waiting
/// for one. Made with [`PoolStats::new`]; the optional figures are set with the `with_*`
/// methods.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open, idle and in use.
    pub size: u64,
    /// Connections open and idle.
    pub idle: u64,
    /// The most connections the pool opens.
    pub max_size: Option<u64>,
    /// Callers waiting for a connection now.
    pub waiting: Option<u64>,
    /// Seconds callers waited for a connection, in total since the pool started.
    pub wait_seconds_total: Option<f64>,
    /// Waits for a connection that had to wait, in total since the pool started.
    pub waits_total: Option<u64>,
}

impl PoolStats {
    /// `size` connections open, of which `idle` are idle.
    #[must_use]
    pub fn new(size: u64, idle: u64) -> Self {
        Self {
            size,
            idle,
            max_size: None,
            waiting: None,
            wait_seconds_total: None,
            waits_total: None,
        }
    }

    /// The most connections the pool opens.
    #[must_use]
    pub fn with_max_size(mut self, max: u64) -> Self {
        self.max_size = Some(max);
        self
    }

    /// Callers waiting for a connection now.
    #[must_use]
    pub fn with_waiting(mut self, waiting: u64) -> Self {
        self.waiting = Some(waiting);
        self
    }

    /// The total of waits for a connection, and the seconds they took, since the pool
    /// started.
    #[must_use]
    pub fn with_waits(mut self, waits: u64, seconds: f64) -> Self {
        self.waits_total = Some(waits);
        self.wait_seconds_total = Some(seconds);
        self
    }
}

type Read = Box<dyn Fn() -> Option<PoolStats> + Send + Sync>;

/// The connections of the pools a service runs on, each read through a closure at every
/// scrape, under the pool's name:
///
/// | metric | type | labels |
/// |---|---|---|
/// | `pool_connections` | gauge | `pool`, `state` (`idle` or `used`) |
/// | `pool_connections_max` | gauge | `pool` |
/// | `pool_pending_requests` | gauge | `pool` (callers waiting now) |
/// | `pool_waits_total` | counter | `pool` |
/// | `pool_wait_seconds_total` | counter | `pool` |
///
/// The last four appear for the pools that report them. A closure that returns `None` (the
/// pool was dropped: hold it through a `Weak`) removes its pool from the scrape, and from the
/// collector, without an error. One collector holds every pool: register it once and
/// [`add`](Self::add) pools to it, before or after.
///
/// ```
/// use std::sync::Arc;
/// use vitals_core::{PoolCollector, PoolStats, Registry};
///
/// // Any pool (an sqlx one has `add_sqlx`, feature `sqlx`); with deadpool, `let s = pool.status(); PoolStats::new(s.size as u64, s.available as u64)`.
/// struct MyPool { open: u64, idle: u64 }
/// let pool = Arc::new(MyPool { open: 8, idle: 3 });
///
/// let pools = PoolCollector::new();
/// let weak = Arc::downgrade(&pool);
/// pools.add("main", move || {
///     let pool = weak.upgrade()?;
///     Some(PoolStats::new(pool.open, pool.idle).with_max_size(10))
/// });
/// let registry = Registry::new();
/// registry.register_collector("pools", pools.clone())?;
/// let used = [("pool", "main"), ("state", "used")];
/// assert_eq!(registry.get_sample_value("pool_connections", &used), Some(5.0));
///
/// drop(pool); // gone from the next scrape, without an error
/// assert_eq!(registry.get_sample_value("pool_connections", &used), None);
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct PoolCollector {
    pools: Arc<Mutex<Vec<(String, Read)>>>,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("PoolCollector")
            .field("pools", &pools.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

impl PoolCollector {
    /// A collector of no pools yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the pool `name` through `read` at every scrape, until `read` returns `None`.
    /// A second pool with the same name replaces the first.
    pub fn add(
        &self,
        name: impl Into<String>,
        read: impl Fn() -> Option<PoolStats> + Send + Sync + 'static,
    ) {
        let name = name.into();
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|(n, _)| *n != name);
        pools.push((name, Box::new(read)));
    }
}

#[cfg(feature = "sqlx")]
impl PoolCollector {
    /// Reads an sqlx pool at every scrape (feature `sqlx`, sqlx 0.9, any database): its open
    /// and idle connections (`Pool::size`, `Pool::num_idle`) and its most
    /// (`max_connections`). sqlx does not report the callers waiting for a connection, nor
    /// how long they wait (it can only log slow acquires), so those series are absent.
    ///
    /// The collector keeps a handle on the pool, as every clone of an sqlx `Pool` does:
    /// [`Pool::close`](sqlx::Pool::close) it when the service shuts down, and it disappears
    /// from the next scrape without an error.
    pub fn add_sqlx<DB: sqlx::Database>(&self, name: impl Into<String>, pool: &sqlx::Pool<DB>) {
        let pool = pool.clone();
        self.add(name, move || {
            if pool.is_closed() {
                return None;
            }
            let max = pool.options().get_max_connections();
            let idle = u64::try_from(pool.num_idle()).unwrap_or(u64::MAX);
            Some(PoolStats::new(pool.size().into(), idle).with_max_size(max.into()))
        });
    }
}

impl Collector for PoolCollector {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        let mut connections = MetricFamily::gauge(
            "pool_connections",
            "Connections a pool holds open, by state (idle or used).",
        );
        let mut max =
            MetricFamily::gauge("pool_connections_max", "The most connections a pool opens.");
        let mut pending = MetricFamily::gauge(
            "pool_pending_requests",
            "Callers waiting for a connection from a pool.",
        );
        let mut waits = MetricFamily::counter(
            "pool_waits_total",
            "Waits for a connection from a pool that had to wait.",
        );
        let mut wait_seconds = MetricFamily::counter(
            "pool_wait_seconds_total",
            "Seconds callers waited for a connection from a pool.",
        );
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|(name, read)| {
            let Some(stats) = read() else {
                return false;
            };
            let pool = [("pool", name.as_str())];
            let used = stats.size.saturating_sub(stats.idle);
            connections.add_sample(
                &[("pool", name), ("state", "idle")],
                MetricValue::gauge(stats.idle),
            );
            connections.add_sample(
                &[("pool", name), ("state", "used")],
                MetricValue::gauge(used),
            );
            if let Some(n) = stats.max_size {
                max.add_sample(&pool, MetricValue::gauge(n));
            }
            if let Some(n) = stats.waiting {
                pending.add_sample(&pool, MetricValue::gauge(n));
            }
            if let Some(n) = stats.waits_total {
                waits.add_sample(&pool, MetricValue::counter(n));
            }
            if let Some(s) = stats
                .wait_seconds_total
                .filter(|s| s.is_finite() && *s >= 0.0)
            {
                wait_seconds.add_sample(&pool, MetricValue::counter(s));
            }
            true
        });
        Ok([connections, max, pending, waits, wait_seconds]
            .into_iter()
            .filter(|f| !f.samples.is_empty())
            .collect())
    }
}
