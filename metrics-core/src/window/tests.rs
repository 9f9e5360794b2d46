#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::Duration;

use super::*;
use crate::http::HttpMetrics;
use crate::metric::Buckets;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Windows with small rings: 1 s × 10 fine, 5 s × 6 coarse (30 s).
fn small(registry: &Registry) -> Windows {
    registry
        .enable_windows(WindowConfig::default().fine(secs(1), 10).coarse(secs(5), 6))
        .unwrap()
}

#[test]
fn counter_rates_come_from_the_changes_between_ticks() {
    let registry = Registry::new();
    let jobs = registry.counter("jobs", "Jobs.").register().unwrap();
    jobs.inc_by(1000); // before the baseline: in no window
    let windows = small(&registry);
    windows.tick_at(secs(0));
    // Second s gets s jobs: 1 + 2 + ... + 8.
    for s in 1..=8 {
        jobs.inc_by(s);
        windows.tick_at(secs(s));
    }
    let w = windows.last(secs(3)).unwrap();
    let stats = w.stats("jobs_total", &[]);
    assert_eq!(stats.kind(), Some(MetricKind::Counter));
    assert_eq!(stats.series(), 1);
    assert_eq!(stats.count(), (6 + 7 + 8) as f64);
    assert_eq!(stats.covered(), secs(3));
    assert_eq!(stats.rate(), Some(7.0));
    // The family name selects it too.
    assert_eq!(w.stats("jobs", &[]).count(), 21.0);
    // A window longer than what the rings hold so far covers what they hold.
    let all = windows.last(secs(10)).unwrap().stats("jobs_total", &[]);
    assert_eq!(all.count(), 36.0);
    assert_eq!(all.covered(), secs(8));
    assert_eq!(all.rate(), Some(36.0 / 8.0));
}

#[test]
fn before_two_ticks_a_window_is_empty_not_an_error() {
    let registry = Registry::new();
    let jobs = registry.counter("jobs", "Jobs.").register().unwrap();
    let windows = small(&registry);
    let stats = windows.last(secs(5)).unwrap().stats("jobs_total", &[]);
    assert_eq!(
        (stats.series(), stats.count(), stats.rate()),
        (0, 0.0, None)
    );
    windows.tick_at(secs(0));
    jobs.inc();
    let stats = windows.last(secs(5)).unwrap().stats("jobs_total", &[]);
    assert_eq!(
        (stats.series(), stats.count(), stats.rate()),
        (1, 0.0, None)
    );
    assert_eq!(stats.covered(), Duration::ZERO);
    windows.tick_at(secs(1));
    let stats = windows.last(secs(5)).unwrap().stats("jobs_total", &[]);
    assert_eq!((stats.count(), stats.rate()), (1.0, Some(1.0)));
}

#[test]
fn the_fine_ring_wraps_and_the_coarse_ring_answers_longer_windows() {
    let registry = Registry::new();
    let jobs = registry.counter("jobs", "Jobs.").register().unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    for s in 1..=27 {
        jobs.inc_by(s);
        windows.tick_at(secs(s));
    }
    // The fine ring holds seconds 18..=27.
    let fine = windows.last(secs(10)).unwrap().stats("jobs_total", &[]);
    assert_eq!(fine.count(), (18..=27).sum::<u64>() as f64);
    assert_eq!(fine.covered(), secs(10));
    // The coarse ring holds the five completed slots of 5 s: seconds 1..=25.
    let coarse = windows.last(secs(30)).unwrap().stats("jobs_total", &[]);
    assert_eq!(coarse.count(), (1..=25).sum::<u64>() as f64);
    assert_eq!(coarse.covered(), secs(25));
    let coarse = windows.last(secs(11)).unwrap().stats("jobs_total", &[]);
    assert_eq!(coarse.count(), (16..=25).sum::<u64>() as f64);
}

#[test]
fn histogram_percentiles_stay_within_their_bucket_of_the_exact_answer() {
    let registry = Registry::new();
    let bounds = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];
    let latency = registry
        .histogram("latency_seconds", "Latency.")
        .buckets(Buckets::new(bounds).unwrap())
        .window_extremes(true)
        .register()
        .unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    // A deterministic spread over (0, 0.8], different each second.
    let mut observed = Vec::new();
    let mut x: u64 = 12345;
    for s in 1..=6 {
        for _ in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 8000 + 1) as f64 / 10_000.0 * (s as f64 / 6.0);
            latency.observe(v);
            if s > 2 {
                observed.push(v);
            }
        }
        windows.tick_at(secs(s));
    }
    let stats = windows.last(secs(4)).unwrap().stats("latency_seconds", &[]);
    observed.sort_by(f64::total_cmp);
    assert_eq!(stats.count(), observed.len() as f64);
    let sum: f64 = observed.iter().sum();
    assert!((stats.sum() - sum).abs() < 1e-9, "{} {sum}", stats.sum());
    assert!((stats.average().unwrap() - sum / observed.len() as f64).abs() < 1e-12);
    assert_eq!(stats.min(), observed.first().copied());
    assert_eq!(stats.max(), observed.last().copied());
    for q in [0.5, 0.9, 0.99] {
        let exact = observed[((q * observed.len() as f64).ceil() as usize).max(1) - 1];
        let estimate = stats.quantile(q).unwrap();
        // The stated bound: the estimate lies in the bucket that holds the exact answer.
        let upper = bounds.iter().copied().find(|&b| exact <= b).unwrap();
        let lower = bounds
            .iter()
            .copied()
            .rev()
            .find(|&b| b < exact)
            .unwrap_or(0.0);
        assert!(
            (lower..=upper).contains(&estimate),
            "q={q}: {estimate} not in [{lower}, {upper}] of exact {exact}"
        );
    }
    assert_eq!(stats.quantile(1.5), None);
    // Bucket counts add up to the count.
    let (b, counts) = stats.buckets();
    assert_eq!(b, bounds);
    assert_eq!(counts.iter().sum::<u64>() as f64, stats.count());
    // Extremes are per window: the first two seconds' smallest values are out of this one.
    let early = windows.last(secs(6)).unwrap().stats("latency_seconds", &[]);
    assert!(early.min().unwrap() <= stats.min().unwrap());
}

#[test]
fn without_extremes_min_and_max_are_absent() {
    let registry = Registry::new();
    let latency = registry
        .histogram("latency_seconds", "Latency.")
        .register()
        .unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    latency.observe(0.3);
    windows.tick_at(secs(1));
    let stats = windows.last(secs(1)).unwrap().stats("latency_seconds", &[]);
    assert_eq!((stats.count(), stats.min(), stats.max()), (1.0, None, None));
    // Interpolated within (0.25, 0.5]: the single observation is the whole bucket.
    assert_eq!(stats.quantile(1.0), Some(0.5));
}

#[test]
fn gauges_report_their_values_at_the_ticks() {
    let registry = Registry::new();
    let queue = registry
        .gauge("queue_depth", "Queue depth.")
        .register()
        .unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    for (s, depth) in [(1, 4), (2, 10), (3, 1), (4, 7)] {
        queue.set(depth);
        windows.tick_at(secs(s));
    }
    let stats = windows.last(secs(3)).unwrap().stats("queue_depth", &[]);
    assert_eq!(stats.count(), 3.0);
    assert_eq!(stats.average(), Some(6.0));
    assert_eq!(
        (stats.min(), stats.max(), stats.last()),
        (Some(1.0), Some(10.0), Some(7.0))
    );
    assert_eq!(stats.rate(), None);
}

#[test]
fn a_counter_that_goes_back_is_a_reset_and_counts_from_zero() {
    // A custom collector reports another process's counter, which restarts.
    struct Restarting(std::sync::Mutex<Vec<u64>>);
    impl crate::Collector for Restarting {
        fn collect(&self) -> Result<Vec<crate::MetricFamily>, crate::CollectError> {
            let value = self.0.lock().unwrap().remove(0);
            let mut family = crate::MetricFamily::counter("worker_jobs", "Jobs.");
            family.add_sample(&[], crate::MetricValue::counter(value));
            Ok(vec![family])
        }
    }
    let registry = Registry::new();
    registry
        .register_collector(
            "restarting",
            Restarting(std::sync::Mutex::new(vec![100, 110, 125, 5, 9])),
        )
        .unwrap();
    let windows = small(&registry);
    for s in 0..5 {
        windows.tick_at(secs(s));
    }
    // 10 + 15, then the restart: 5 (not -120), then 4.
    let stats = windows
        .last(secs(4))
        .unwrap()
        .stats("worker_jobs_total", &[]);
    assert_eq!(stats.count(), 10.0 + 15.0 + 5.0 + 4.0);
}

#[test]
fn selections_match_labels_and_empty_ones_answer_nothing() {
    let registry = Registry::new();
    let requests = registry
        .counter("requests", "Requests.")
        .label_names(["route", "status"])
        .register()
        .unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    requests
        .with_labels(&[("route", "/a"), ("status", "200")])
        .unwrap()
        .inc_by(5);
    requests
        .with_labels(&[("route", "/a"), ("status", "500")])
        .unwrap()
        .inc_by(2);
    requests
        .with_labels(&[("route", "/b"), ("status", "200")])
        .unwrap()
        .inc_by(7);
    windows.tick_at(secs(1));
    let w = windows.last(secs(5)).unwrap();
    assert_eq!(w.stats("requests_total", &[("route", "/a")]).count(), 7.0);
    assert_eq!(
        w.stats("requests_total", &[("status", "200")]).count(),
        12.0
    );
    assert_eq!(w.stats("requests_total", &[]).series(), 3);
    for (name, labels) in [
        ("requests_total", &[("route", "/c")][..]),
        ("requests_total", &[("nope", "x")][..]),
        ("nothing_total", &[][..]),
    ] {
        let stats = w.stats(name, labels);
        assert_eq!(
            (stats.series(), stats.kind(), stats.count()),
            (0, None, 0.0)
        );
        assert_eq!(stats.quantile(0.5), None);
    }
}

#[test]
fn a_series_removed_mid_window_keeps_what_it_counted_and_then_counts_nothing() {
    let registry = Registry::new();
    let requests = registry
        .counter("requests", "Requests.")
        .label_names(["route"])
        .register()
        .unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    requests.with_labels(&[("route", "/a")]).unwrap().inc_by(4);
    windows.tick_at(secs(1));
    assert!(requests.remove(&[("route", "/a")]).unwrap());
    windows.tick_at(secs(2));
    windows.tick_at(secs(3));
    let stats = windows.last(secs(5)).unwrap().stats("requests_total", &[]);
    assert_eq!((stats.series(), stats.count()), (1, 4.0));
    // Recorded again: a new series from zero, counted whole.
    requests.with_labels(&[("route", "/a")]).unwrap().inc_by(2);
    windows.tick_at(secs(4));
    let stats = windows.last(secs(5)).unwrap().stats("requests_total", &[]);
    assert_eq!(stats.count(), 6.0);
    // Once both rings moved past it, a series that is gone is forgotten.
    assert!(requests.remove(&[("route", "/a")]).unwrap());
    for s in 5..=60 {
        windows.tick_at(secs(s));
    }
    assert_eq!(windows.tracked_series(), 0);
}

#[test]
fn bad_windows_and_options_are_errors() {
    let registry = Registry::new();
    assert!(matches!(
        registry.window(secs(1)),
        Err(Error::InvalidWindow { .. })
    ));
    for config in [
        WindowConfig::default().fine(Duration::ZERO, 10),
        WindowConfig::default().coarse(Duration::from_millis(1500), 10),
        WindowConfig::default().fine(secs(1), 0),
        WindowConfig::default().coarse(secs(10), MAX_SLOTS + 1),
        WindowConfig::default().fine(secs(1), 5),
        WindowConfig::default().max_series(0),
    ] {
        let error = registry.enable_windows(config.clone()).unwrap_err();
        assert!(matches!(error, Error::InvalidWindow { .. }), "{config:?}");
        assert!(registry.windows().is_none());
    }
    let windows = registry.enable_windows(WindowConfig::default()).unwrap();
    assert!(registry.enable_windows(WindowConfig::default()).is_ok());
    let other = registry.enable_windows(WindowConfig::default().max_series(5));
    assert!(other.unwrap_err().to_string().contains("other options"));
    assert_eq!(windows.config().longest(), secs(3600));
    let error = registry.window(secs(3601)).unwrap_err();
    assert!(
        error.to_string().contains("longer than the rings hold"),
        "{error}"
    );
    assert!(registry.window(Duration::ZERO).is_err());
    assert!(registry.window(secs(3600)).is_ok());
    // Ticks that go back in time, or repeat the last one, are ignored: after the baseline
    // at 5 s, only the tick at 6 s makes a slot.
    let covered = || registry.window(secs(60)).unwrap().stats("x", &[]).covered();
    windows.tick_at(secs(5));
    windows.tick_at(secs(4));
    windows.tick_at(secs(5));
    assert_eq!(covered(), Duration::ZERO);
    windows.tick_at(secs(6));
    windows.tick_at(secs(3));
    assert_eq!(covered(), secs(1));
}

#[test]
fn the_series_cap_bounds_what_is_tracked() {
    let registry = Registry::new();
    let family = registry
        .counter("requests", "Requests.")
        .label_names(["user"])
        .register()
        .unwrap();
    for i in 0..20 {
        family
            .with_labels(&[("user", &i.to_string())])
            .unwrap()
            .inc();
    }
    let windows = registry
        .enable_windows(WindowConfig::default().max_series(8).only(["requests"]))
        .unwrap();
    windows.tick_at(secs(0));
    assert_eq!(windows.tracked_series(), 8);
    assert_eq!(windows.untracked_series(), 12);
    // 8 counters of 660 slots of 8 bytes each, and a little for their labels.
    let bytes = windows.memory_bytes();
    assert!(
        (8 * 660 * 8..8 * 660 * 8 + 8 * 600).contains(&bytes),
        "{bytes}"
    );
}

#[test]
fn routes_get_their_golden_signals_under_both_namings() {
    for naming in [
        crate::http::Naming::Prometheus,
        crate::http::Naming::OpenTelemetry,
    ] {
        let registry = Registry::new();
        let http = HttpMetrics::builder(&registry)
            .naming(naming)
            .build()
            .unwrap();
        let windows = small(&registry);
        windows.tick_at(secs(0));
        let held = http.start("GET", Some("/slow"));
        for (route, status, n) in [
            ("/users/{id}", 200, 30),
            ("/users/{id}", 503, 10),
            ("/", 200, 4),
        ] {
            for _ in 0..n {
                let mut guard = http.start("GET", Some(route));
                guard.response(status);
                guard.finish();
            }
        }
        windows.tick_at(secs(2));
        let routes = windows.last(secs(5)).unwrap().routes();
        let users = &routes[0];
        assert_eq!(
            (&*users.method, &*users.route),
            ("GET", "/users/{id}"),
            "{naming:?}"
        );
        assert_eq!(users.signals.rate, 20.0);
        assert_eq!(users.signals.error_ratio, Some(0.25));
        assert!(users.signals.p50.unwrap() <= users.signals.p99.unwrap());
        assert!(users.signals.p99.unwrap() <= 0.005, "{:?}", users.signals);
        assert_eq!(routes[1].route, "/");
        assert_eq!(routes[1].signals.error_ratio, Some(0.0));
        let slow = routes.iter().find(|r| r.route == "/slow").unwrap();
        assert_eq!(
            (slow.signals.in_flight, slow.signals.error_ratio),
            (1.0, None)
        );
        drop(held);
        let json = windows.live_json(secs(10)).unwrap();
        assert!(json.contains("\"route\":\"/users/{id}\""), "{json}");
        assert!(json.contains("\"error_ratio\":[0.25]"), "{json}");
    }
}

#[test]
fn the_coarse_ring_keeps_gauge_means_and_histogram_extremes() {
    let registry = Registry::new();
    let queue = registry
        .gauge("queue_depth", "Queue depth.")
        .register()
        .unwrap();
    let latency = registry
        .histogram("latency_seconds", "Latency.")
        .window_extremes(true)
        .register()
        .unwrap();
    let windows = small(&registry);
    windows.tick_at(secs(0));
    // Seconds 1..=10 (two coarse slots of 5 s): depth = the second, one observation each.
    for s in 1..=10u32 {
        queue.set(i64::from(s));
        latency.observe(f64::from(s) / 100.0);
        windows.tick_at(secs(u64::from(s)));
    }
    windows.tick_at(secs(11)); // the fine ring alone holds 10 s: this window is coarse
    let w = windows.last(secs(12)).unwrap();
    let depth = w.stats("queue_depth", &[]);
    // Two coarse slots, each the mean of its five ticks: 3 and 8.
    assert_eq!(
        (depth.count(), depth.min(), depth.max()),
        (2.0, Some(3.0), Some(8.0))
    );
    let observed = w.stats("latency_seconds", &[]);
    assert_eq!(observed.count(), 10.0);
    assert_eq!((observed.min(), observed.max()), (Some(0.01), Some(0.1)));
}
