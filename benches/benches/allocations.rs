//! Heap allocations of vitals-core and its peers, counted rather than timed (counts do not
//! depend on a noisy machine): `cargo bench -p vitals-benches --bench allocations`.
//!
//! Counts come from dhat's counting allocator, so that this binary needs no `unsafe` of its
//! own. BENCHMARKS.md reports the table it prints.

use std::hint::black_box;

use vitals_core::Registry;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: usize = 100_000;
const REPEAT: usize = 100_000;

/// Allocations and bytes made by `f`, per `per` operations.
fn count(per: usize, f: impl FnOnce()) -> (f64, f64) {
    let before = dhat::HeapStats::get();
    f();
    let after = dhat::HeapStats::get();
    #[allow(clippy::cast_precision_loss)]
    (
        (after.total_blocks - before.total_blocks) as f64 / per as f64,
        (after.total_bytes - before.total_bytes) as f64 / per as f64,
    )
}

fn row(workload: &str, krate: &str, (allocs, bytes): (f64, f64)) {
    println!("| {workload} | {krate} | {allocs:.2} | {bytes:.1} |");
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let keys: Vec<String> = (0..N).map(|i| format!("/users/{i}")).collect();
    println!("| workload | crate | allocations per op | bytes per op |");
    println!("|---|---|---|---|");

    let workload = "insert 100k new label sets";
    let family = Registry::new()
        .counter("c", "h")
        .label_names(["route"])
        .series_cap(N)
        .register()
        .unwrap();
    row(
        workload,
        "vitals",
        count(N, || {
            for k in &keys {
                family.with_label_values(&[k]).unwrap().inc();
            }
        }),
    );
    let prometheus =
        prometheus::IntCounterVec::new(prometheus::Opts::new("c", "h"), &["route"]).unwrap();
    row(
        workload,
        "prometheus",
        count(N, || {
            for k in &keys {
                prometheus.with_label_values(&[k]).inc();
            }
        }),
    );
    let client = prometheus_client::metrics::family::Family::<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >::default();
    row(
        workload,
        "prometheus_client",
        count(N, || {
            for k in &keys {
                client
                    .get_or_create(&vec![("route".to_owned(), k.clone())])
                    .inc();
            }
        }),
    );
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    row(
        workload,
        "metrics",
        count(N, || {
            metrics::with_local_recorder(&recorder, || {
                for k in &keys {
                    metrics::counter!("c", "route" => k.clone()).increment(1);
                }
            });
        }),
    );

    let workload = "lookup of an existing 2-label set + inc";
    let family = Registry::new()
        .counter("requests", "h")
        .label_names(["method", "status"])
        .register()
        .unwrap();
    family.with_label_values(&["GET", "200"]).unwrap().inc();
    row(
        workload,
        "vitals (with_label_values)",
        count(REPEAT, || {
            for _ in 0..REPEAT {
                family
                    .with_label_values(black_box(&["GET", "200"]))
                    .unwrap()
                    .inc();
            }
        }),
    );
    row(
        workload,
        "vitals (labels by name)",
        count(REPEAT, || {
            for _ in 0..REPEAT {
                family
                    .with_labels(black_box(&[("status", "200"), ("method", "GET")]))
                    .unwrap()
                    .inc();
            }
        }),
    );
    let prometheus = prometheus::IntCounterVec::new(
        prometheus::Opts::new("requests", "h"),
        &["method", "status"],
    )
    .unwrap();
    row(
        workload,
        "prometheus",
        count(REPEAT, || {
            for _ in 0..REPEAT {
                prometheus
                    .with_label_values(black_box(&["GET", "200"]))
                    .inc();
            }
        }),
    );
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    row(
        workload,
        "metrics",
        count(REPEAT, || {
            metrics::with_local_recorder(&recorder, || {
                for _ in 0..REPEAT {
                    let labels = [("method", "GET"), ("status", "200")];
                    metrics::counter!("requests", &labels).increment(1);
                }
            });
        }),
    );

    let workload = "histogram observe via a handle";
    let histogram = Registry::new().histogram("h", "h").register().unwrap();
    row(
        workload,
        "vitals",
        count(REPEAT, || {
            for i in 0..REPEAT {
                #[allow(clippy::cast_precision_loss)]
                histogram.observe(black_box(i as f64 * 1e-4));
            }
        }),
    );
}
