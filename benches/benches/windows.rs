//! What the windowed statistics cost: recording with windows on next to off (the same
//! handles, in one run), one tick over many series, and the memory per tracked series.
//!
//! `cargo bench -p vitals-benches --bench windows -- --noplot`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vitals_core::window::WindowConfig;
use vitals_core::Registry;

/// A registry with a counter and a histogram, and windows on (ticking every second on their
/// own thread, as the live page runs them) or off.
fn registry(windows: bool) -> (Registry, vitals_core::Counter, vitals_core::Histogram) {
    let registry = Registry::new();
    let counter = registry.counter("c", "h").register().unwrap();
    let histogram = registry.histogram("h_seconds", "h").register().unwrap();
    if windows {
        let windows = registry.enable_windows(WindowConfig::default()).unwrap();
        windows.spawn_ticker().unwrap();
    }
    (registry, counter, histogram)
}

fn recording(c: &mut Criterion) {
    let mut g = c.benchmark_group("windows_record");
    for on in [false, true] {
        let name = if on { "windows_on" } else { "windows_off" };
        let (_registry, counter, histogram) = registry(on);
        g.bench_function(format!("counter_inc/{name}"), |b| {
            b.iter(|| black_box(&counter).inc());
        });
        g.bench_function(format!("histogram_observe/{name}"), |b| {
            b.iter(|| black_box(&histogram).observe(black_box(0.042)));
        });
    }
    // The opt-in extremes: two loads per observation, a CAS when one is a new extreme.
    let registry = Registry::new();
    let extremes = registry
        .histogram("h_seconds", "h")
        .window_extremes(true)
        .register()
        .unwrap();
    registry
        .enable_windows(WindowConfig::default())
        .unwrap()
        .spawn_ticker()
        .unwrap();
    g.bench_function("histogram_observe/windows_on_with_extremes", |b| {
        b.iter(|| black_box(&extremes).observe(black_box(0.042)));
    });
    g.finish();
}

/// One tick over `n` counter series, or `n` histogram series with the default buckets.
fn ticks(c: &mut Criterion) {
    let mut g = c.benchmark_group("windows_tick");
    g.sample_size(20);
    for (kind, n) in [("counters", 10_000), ("histograms", 1_000)] {
        let registry = Registry::new().with_series_cap(20_000);
        let windows = registry
            .enable_windows(WindowConfig::default().max_series(20_000))
            .unwrap();
        if kind == "counters" {
            let family = registry
                .counter("requests", "h")
                .label_names(["id"])
                .register()
                .unwrap();
            for i in 0..n {
                family.with_label_values(&[&i.to_string()]).unwrap().inc();
            }
        } else {
            let family = registry
                .histogram("latency_seconds", "h")
                .label_names(["id"])
                .register()
                .unwrap();
            for i in 0..n {
                family
                    .with_label_values(&[&i.to_string()])
                    .unwrap()
                    .observe(0.1);
            }
        }
        let mut second = 0u64;
        windows.tick_at(Duration::from_secs(second));
        println!(
            "windows: {n} {kind}: {} tracked, {} bytes per series",
            windows.tracked_series(),
            windows.memory_bytes() / windows.tracked_series().max(1)
        );
        g.bench_function(format!("{n}_{kind}"), |b| {
            b.iter(|| {
                second += 1;
                windows.tick_at(Duration::from_secs(second));
            });
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = recording, ticks
}
criterion_main!(benches);
