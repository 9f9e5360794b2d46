//! The collectors of what services run on, against the accessors of the things they read: a
//! tokio runtime under load, a pool whose connections come and go, and a real sqlx pool
//! (SQLite in memory).

#![allow(clippy::cast_precision_loss)] // counts far below 2^52

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vitals_core::{PoolCollector, PoolStats, Registry, TokioCollector};

#[test]
fn the_tokio_collector_reads_what_the_runtime_reports() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::new();
    registry
        .register_collector("tokio", TokioCollector::new(runtime.handle().clone()))
        .unwrap();
    // 40 tasks parked on a channel (alive), and some that keep the workers busy.
    let (release, gate) = tokio::sync::watch::channel(false);
    for _ in 0..40 {
        let mut gate = gate.clone();
        runtime.spawn(async move {
            let _ = gate.wait_for(|open| *open).await;
        });
    }
    let busy: Vec<_> = (0..4)
        .map(|_| {
            runtime.spawn(async {
                let mut x = 0u64;
                for i in 0..2_000_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                    if i % 100_000 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                x
            })
        })
        .collect();
    runtime.block_on(async {
        for task in busy {
            task.await.unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    let metrics = runtime.handle().metrics();
    let v = |name: &str, labels: &[(&str, &str)]| registry.get_sample_value(name, labels);
    assert_eq!(v("tokio_workers", &[]), Some(2.0));
    assert_eq!(
        v("tokio_alive_tasks", &[]),
        Some(metrics.num_alive_tasks() as f64)
    );
    assert_eq!(v("tokio_alive_tasks", &[]), Some(40.0));
    assert_eq!(
        v("tokio_global_queue_depth", &[]),
        Some(metrics.global_queue_depth() as f64)
    );
    let mut busy_total = 0.0;
    for worker in ["0", "1"] {
        let w: usize = worker.parse().unwrap();
        let before = metrics.worker_total_busy_duration(w).as_secs_f64();
        let scraped = v("tokio_worker_busy_seconds_total", &[("worker", worker)]).unwrap();
        let after = metrics.worker_total_busy_duration(w).as_secs_f64();
        assert!(
            (before..=after).contains(&scraped),
            "{before} <= {scraped} <= {after}"
        );
        busy_total += scraped;
        let parks_before = metrics.worker_park_count(w) as f64;
        let parks = v("tokio_worker_parks_total", &[("worker", worker)]).unwrap();
        assert!(parks >= parks_before && parks <= metrics.worker_park_count(w) as f64);
    }
    assert!(busy_total > 0.0, "the busy tasks kept the workers busy");
    assert_eq!(
        v("tokio_worker_busy_seconds_total", &[("worker", "2")]),
        None
    );
    release.send(true).unwrap();
    runtime.block_on(async {
        for _ in 0..200 {
            if runtime_alive_is_zero() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert_eq!(
        v("tokio_alive_tasks", &[]),
        Some(metrics.num_alive_tasks() as f64)
    );
}

fn runtime_alive_is_zero() -> bool {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
        <= 1
}

/// A pool whose connections threads check out and in.
struct Pool {
    open: AtomicU64,
    idle: AtomicU64,
    waits: AtomicU64,
}

impl Pool {
    fn new(open: u64, idle: u64) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicU64::new(open),
            idle: AtomicU64::new(idle),
            waits: AtomicU64::new(0),
        })
    }

    fn stats(&self) -> PoolStats {
        let open = self.open.load(Ordering::SeqCst);
        let idle = self.idle.load(Ordering::SeqCst).min(open);
        PoolStats::new(open, idle)
            .with_max_size(16)
            .with_waits(self.waits.load(Ordering::SeqCst), 0.5)
    }
}

#[test]
fn the_pool_collector_follows_its_pools_and_forgets_dropped_ones() {
    let registry = Registry::new();
    let pools = PoolCollector::new();
    registry.register_collector("pools", pools.clone()).unwrap();
    let pool = Pool::new(16, 16);
    let weak = Arc::downgrade(&pool);
    pools.add("main", move || weak.upgrade().map(|p| p.stats()));
    let other = Pool::new(2, 1);
    let weak = Arc::downgrade(&other);
    pools.add("cache", move || weak.upgrade().map(|p| p.stats()));

    // Under load: four threads check connections out and back in while scrapes run.
    std::thread::scope(|s| {
        for _ in 0..4 {
            let pool = &pool;
            s.spawn(move || {
                for _ in 0..5_000 {
                    pool.idle.fetch_sub(1, Ordering::SeqCst);
                    pool.waits.fetch_add(1, Ordering::SeqCst);
                    pool.idle.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        for _ in 0..50 {
            let text = vitals_core::encoding::text::encode(&registry);
            assert!(text.contains("pool_connections{pool=\"main\",state=\"used\"}"));
        }
    });
    // At rest, the scrape is what the pool says.
    pool.idle.store(11, Ordering::SeqCst);
    let v = |name: &str, labels: &[(&str, &str)]| registry.get_sample_value(name, labels);
    let stats = pool.stats();
    assert_eq!(
        v("pool_connections", &[("pool", "main"), ("state", "used")]),
        Some(5.0)
    );
    assert_eq!(
        v("pool_connections", &[("pool", "main"), ("state", "idle")]),
        Some(11.0)
    );
    assert_eq!(v("pool_connections_max", &[("pool", "main")]), Some(16.0));
    assert_eq!(
        v("pool_waits_total", &[("pool", "main")]),
        Some(stats.waits_total.unwrap() as f64)
    );
    assert_eq!(v("pool_waits_total", &[("pool", "main")]), Some(20_000.0));
    assert_eq!(
        v("pool_connections", &[("pool", "cache"), ("state", "used")]),
        Some(1.0)
    );

    drop(other);
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(!text.contains("pool=\"cache\""), "{text}");
    assert!(text.contains("pool=\"main\""));
    assert!(
        !text.contains("vitals_collector_errors_total{"),
        "no error: {text}"
    );
    drop(pool);
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(!text.contains("pool_"), "{text}");
    assert!(
        !text.contains("vitals_collector_errors_total{"),
        "no error: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlx_pool_is_reported_as_sqlx_counts_it_and_leaves_when_closed() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let registry = Registry::new();
    let pools = PoolCollector::new();
    registry.register_collector("pools", pools.clone()).unwrap();
    pools.add_sqlx("db", &pool);
    let v = |state: &str| {
        registry.get_sample_value("pool_connections", &[("pool", "db"), ("state", state)])
    };
    let check = |what: &str| {
        let (size, idle) = (u64::from(pool.size()), pool.num_idle() as u64);
        assert_eq!(v("idle"), Some(idle as f64), "{what}");
        assert_eq!(v("used"), Some((size - idle) as f64), "{what}");
    };
    assert_eq!(
        registry.get_sample_value("pool_connections_max", &[("pool", "db")]),
        Some(4.0)
    );
    // Three connections held by queries in progress, then given back.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut connection = pool.acquire().await.unwrap();
        sqlx::query("SELECT 1")
            .execute(&mut *connection)
            .await
            .unwrap();
        held.push(connection);
    }
    check("three held");
    assert_eq!(v("used"), Some(3.0));
    // Under load: tasks query through the pool while scrapes run.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
                }
            })
        })
        .collect();
    for _ in 0..20 {
        let used = v("used").unwrap();
        assert!((0.0..=4.0).contains(&used), "{used}");
        tokio::task::yield_now().await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    drop(held);
    // Connections go back to the pool from a task of their own.
    for _ in 0..100 {
        if pool.num_idle() as u64 == u64::from(pool.size()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check("all given back");
    assert_eq!(v("used"), Some(0.0));

    pool.close().await;
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(!text.contains("pool=\"db\""), "{text}");
    assert!(
        !text.contains("vitals_collector_errors_total{"),
        "no error: {text}"
    );
}
