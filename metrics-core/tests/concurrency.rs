//! Consistency under concurrency: scrapes taken while threads record never show a histogram
//! whose `_count` differs from its `+Inf` bucket or whose buckets decrease, and nothing
//! recorded concurrently is lost or counted twice.

// Casts of test arithmetic: counts of a few million at most, compared with what the registry reports.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_precision_loss
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use vitals_core::{encoding::text, Buckets, Registry};

const THREADS: u64 = 4;

/// Checks every histogram series of a text exposition; returns how many it checked.
fn check_histograms(exposition: &str) -> usize {
    let mut checked = 0;
    let mut buckets: Vec<u64> = Vec::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let (sample, value) = line.rsplit_once(' ').unwrap();
        if sample.contains("_bucket{") {
            buckets.push(value.parse().unwrap());
        } else if sample.contains("_count") && !buckets.is_empty() {
            let count: u64 = value.parse().unwrap();
            assert!(
                buckets.windows(2).all(|w| w[0] <= w[1]),
                "cumulative buckets decrease: {buckets:?}"
            );
            assert_eq!(
                buckets.last().copied(),
                Some(count),
                "_count differs from the +Inf bucket"
            );
            buckets.clear();
            checked += 1;
        }
    }
    checked
}

#[test]
fn scrapes_during_observation_are_consistent_and_nothing_is_lost() {
    const SCRAPES: usize = 300;
    let registry = Registry::new();
    let latency = registry
        .histogram("work_duration_seconds", "Work.")
        .buckets(Buckets::exponential(0.001, 2.0, 14).unwrap())
        .label_names(["worker"])
        .register()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(THREADS as usize + 1));
    // Writers record until the scraper has taken its scrapes, so every scrape overlaps them,
    // and report how many observations they made.
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let latency = latency.clone();
            let stop = Arc::clone(&stop);
            let started = Arc::clone(&started);
            thread::spawn(move || {
                // Half the threads share one series, the others have their own.
                let series = latency.with_label_values(&[&(t % 2).to_string()]).unwrap();
                started.wait();
                let mut made = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    series.observe((made % 1000) as f64 * 0.0001 * (t + 1) as f64);
                    made += 1;
                }
                made
            })
        })
        .collect();
    started.wait();
    let mut checked = 0;
    for _ in 0..SCRAPES {
        checked += check_histograms(&text::encode(&registry));
    }
    stop.store(true, Ordering::Relaxed);
    let made: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        checked >= SCRAPES,
        "each scrape checked at least one histogram series"
    );
    assert_eq!(check_histograms(&text::encode(&registry)), 2);
    let counted: f64 = ["0", "1"]
        .iter()
        .map(|w| {
            registry
                .get_sample_value("work_duration_seconds_count", &[("worker", w)])
                .unwrap()
        })
        .sum();
    assert_eq!(counted, made as f64, "every observation counted once");
}

#[test]
fn racing_lookups_of_new_label_sets_create_each_series_once() {
    let registry = Registry::new();
    let requests = registry
        .counter("requests", "Requests.")
        .label_names(["route", "status"])
        .register()
        .unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let requests = requests.clone();
            thread::spawn(move || {
                for i in 0..20_000u32 {
                    let route = format!("/r{}", i % 100);
                    let status = if i % 3 == 0 { "500" } else { "200" };
                    requests
                        .with_labels(&[("status", status), ("route", &route)])
                        .unwrap()
                        .inc();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        requests.len(),
        200,
        "100 routes × 2 statuses, no duplicates"
    );
    let mut total = 0.0;
    for i in 0..100 {
        for status in ["200", "500"] {
            total += registry
                .get_sample_value(
                    "requests_total",
                    &[("route", &format!("/r{i}")), ("status", status)],
                )
                .unwrap();
        }
    }
    assert_eq!(total, f64::from(20_000 * THREADS as u32));
}

#[test]
fn summary_and_gauges_lose_nothing_across_threads() {
    let registry = Registry::new();
    let summary = registry.summary("sizes", "Sizes.").register().unwrap();
    let in_flight = registry
        .gauge("in_flight", "In flight.")
        .register()
        .unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (summary, in_flight) = (summary.clone(), in_flight.clone());
            thread::spawn(move || {
                for i in 0..50_000u32 {
                    let _guard = in_flight.track();
                    summary.observe(f64::from(i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(summary.count(), 50_000 * THREADS);
    assert_eq!(in_flight.get(), 0);
    let median = registry
        .get_sample_value("sizes", &[("quantile", "0.5")])
        .unwrap();
    assert!((median - 24_999.0).abs() <= 0.01 * 24_999.0, "{median}");
}

#[test]
fn http_requests_on_many_threads_scrape_consistently_and_add_up() {
    use vitals_core::http::{HttpMetrics, RequestGuard};

    const SCRAPES: usize = 200;
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    // Guards started on one thread are finished on another, as a request's future moves
    // between a server's workers: counted in on one shard, out on another.
    // The queue starts with a guard per thread, so that each thread finishes a guard
    // another thread started.
    let handed_over: Arc<Mutex<Vec<RequestGuard>>> = Arc::new(Mutex::new(
        (0..THREADS)
            .map(|_| {
                let mut guard = metrics.start("GET", Some("/r"));
                guard.response(200);
                guard
            })
            .collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(THREADS as usize + 1));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (metrics, handed_over) = (metrics.clone(), Arc::clone(&handed_over));
            let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
            thread::spawn(move || {
                started.wait();
                let mut made = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut guard = metrics.start("GET", Some("/r"));
                    guard.response(if made % 10 == t { 500 } else { 200 });
                    let other = {
                        let mut queue = handed_over.lock().unwrap();
                        queue.push(guard);
                        queue.swap_remove(0)
                    };
                    other.finish();
                    made += 1;
                }
                made
            })
        })
        .collect();
    started.wait();
    let mut last_total = 0.0;
    let (mut scrapes, mut checked) = (0, 0);
    // At least SCRAPES scrapes, and on until one has seen a finished request: the writers
    // may not have run yet when the first scrapes are taken.
    while scrapes < SCRAPES || checked == 0 {
        scrapes += 1;
        let exposition = text::encode(&registry);
        checked += check_histograms(&exposition);
        for line in exposition.lines() {
            if line.starts_with("http_requests_in_flight{") {
                let value: i64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
                // A guard in each writer's hands, and the ones queued.
                assert!((0..=2 * THREADS as i64).contains(&value), "{line}");
            }
        }
        let total = registry
            .get_sample_value(
                "http_requests_total",
                &[("method", "GET"), ("route", "/r"), ("status", "200")],
            )
            .unwrap_or(0.0);
        assert!(
            total >= last_total,
            "the counter went down: {last_total} then {total}"
        );
        last_total = total;
    }
    stop.store(true, Ordering::Relaxed);
    let made: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    for guard in handed_over.lock().unwrap().drain(..) {
        guard.finish();
    }
    assert!(checked > 0, "the scrapes saw the histogram");
    let value = |status: &str| {
        registry
            .get_sample_value(
                "http_requests_total",
                &[("method", "GET"), ("route", "/r"), ("status", status)],
            )
            .unwrap_or(0.0)
    };
    assert_eq!(
        value("200") + value("500"),
        (made + THREADS) as f64,
        "every request counted once"
    );
    assert_eq!(
        registry.get_sample_value(
            "http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/r"), ("status", "200")],
        ),
        Some(value("200"))
    );
    assert_eq!(
        registry.get_sample_value(
            "http_requests_in_flight",
            &[("method", "GET"), ("route", "/r")],
        ),
        Some(0.0)
    );
}
