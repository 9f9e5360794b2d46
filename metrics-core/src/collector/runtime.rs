//! [`TokioCollector`]: a tokio runtime's own metrics (feature `tokio-runtime`).

use tokio::runtime::Handle;

use crate::metric::MetricValue;

use super::{CollectError, Collector, MetricFamily};

/// A tokio runtime's metrics, read from its [`RuntimeMetrics`](tokio::runtime::RuntimeMetrics)
/// at every scrape:
///
/// | metric | type | from |
/// |---|---|---|
/// | `tokio_workers` | gauge | `num_workers` |
/// | `tokio_alive_tasks` | gauge | `num_alive_tasks` |
/// | `tokio_global_queue_depth` | gauge | `global_queue_depth` |
/// | `tokio_worker_busy_seconds_total{worker}` | counter | `worker_total_busy_duration` |
/// | `tokio_worker_parks_total{worker}` | counter | `worker_park_count` |
///
/// Built with `RUSTFLAGS="--cfg tokio_unstable"`, it adds tokio's unstable ones:
/// `tokio_blocking_threads`, `tokio_idle_blocking_threads`, `tokio_blocking_queue_depth`,
/// `tokio_spawned_tasks_total`, `tokio_remote_schedules_total`,
/// `tokio_budget_forced_yields_total`, and per worker `tokio_worker_polls_total`,
/// `tokio_worker_steals_total`, `tokio_worker_overflows_total` and
/// `tokio_worker_local_queue_depth`. Workers are the runtime's, so the `worker` label is
/// bounded by its thread count.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), vitals_core::Error> {
/// use vitals_core::{Registry, TokioCollector};
///
/// let registry = Registry::new();
/// registry.register_collector("tokio", TokioCollector::current())?;
/// assert_eq!(registry.get_sample_value("tokio_workers", &[]), Some(2.0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokioCollector {
    handle: Handle,
}

impl TokioCollector {
    /// The collector of the runtime that `handle` belongs to.
    #[must_use]
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// The collector of the runtime this is called on.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`Handle::current`] does; use [`Handle::try_current`] and
    /// [`new`](Self::new) where that can happen.
    #[must_use]
    pub fn current() -> Self {
        Self::new(Handle::current())
    }
}

impl Collector for TokioCollector {
    #[allow(clippy::cast_possible_truncation)]
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        let metrics = self.handle.metrics();
        let gauge = |name: &str, help: &str, value: usize| {
            MetricFamily::gauge(name, help).with_sample(&[], MetricValue::gauge(value as u64))
        };
        let workers = metrics.num_workers();
        let names: Vec<String> = (0..workers).map(|w| w.to_string()).collect();
        let per_worker = |name: &str, help: &str, value: &dyn Fn(usize) -> MetricValue| {
            let mut family = MetricFamily::counter(name, help);
            for (w, label) in names.iter().enumerate() {
                family.add_sample(&[("worker", label)], value(w));
            }
            family
        };
        #[allow(unused_mut)]
        let mut families = vec![
            gauge(
                "tokio_workers",
                "Worker threads of the tokio runtime.",
                workers,
            ),
            gauge(
                "tokio_alive_tasks",
                "Tasks of the tokio runtime that are alive (spawned, not finished).",
                metrics.num_alive_tasks(),
            ),
            gauge(
                "tokio_global_queue_depth",
                "Tasks waiting in the tokio runtime's global queue.",
                metrics.global_queue_depth(),
            ),
            per_worker(
                "tokio_worker_busy_seconds_total",
                "Seconds each worker of the tokio runtime spent busy.",
                &|w| MetricValue::counter(metrics.worker_total_busy_duration(w).as_secs_f64()),
            ),
            per_worker(
                "tokio_worker_parks_total",
                "Times each worker of the tokio runtime parked.",
                &|w| MetricValue::counter(metrics.worker_park_count(w)),
            ),
        ];
        #[cfg(tokio_unstable)]
        {
            families.extend([
                gauge(
                    "tokio_blocking_threads",
                    "Blocking threads of the tokio runtime.",
                    metrics.num_blocking_threads(),
                ),
                gauge(
                    "tokio_idle_blocking_threads",
                    "Idle blocking threads of the tokio runtime.",
                    metrics.num_idle_blocking_threads(),
                ),
                gauge(
                    "tokio_blocking_queue_depth",
                    "Tasks waiting for a blocking thread of the tokio runtime.",
                    metrics.blocking_queue_depth(),
                ),
                MetricFamily::counter(
                    "tokio_spawned_tasks_total",
                    "Tasks spawned on the tokio runtime.",
                )
                .with_sample(&[], MetricValue::counter(metrics.spawned_tasks_count())),
                MetricFamily::counter(
                    "tokio_remote_schedules_total",
                    "Tasks scheduled from outside the tokio runtime.",
                )
                .with_sample(&[], MetricValue::counter(metrics.remote_schedule_count())),
                MetricFamily::counter(
                    "tokio_budget_forced_yields_total",
                    "Times tasks of the tokio runtime were made to yield by the budget.",
                )
                .with_sample(
                    &[],
                    MetricValue::counter(metrics.budget_forced_yield_count()),
                ),
                per_worker(
                    "tokio_worker_polls_total",
                    "Tasks each worker of the tokio runtime polled.",
                    &|w| MetricValue::counter(metrics.worker_poll_count(w)),
                ),
                per_worker(
                    "tokio_worker_steals_total",
                    "Tasks each worker of the tokio runtime stole from another.",
                    &|w| MetricValue::counter(metrics.worker_steal_count(w)),
                ),
                per_worker(
                    "tokio_worker_overflows_total",
                    "Times each worker's local queue of the tokio runtime overflowed.",
                    &|w| MetricValue::counter(metrics.worker_overflow_count(w)),
                ),
            ]);
            let mut depth = MetricFamily::gauge(
                "tokio_worker_local_queue_depth",
                "Tasks in each worker's local queue of the tokio runtime.",
            );
            for (w, label) in names.iter().enumerate() {
                depth.add_sample(
                    &[("worker", label)],
                    MetricValue::gauge(metrics.worker_local_queue_depth(w) as u64),
                );
            }
            families.push(depth);
        }
        Ok(families)
    }
}
