//! `metrics::counter!` through vitals' facade recorder next to metrics-exporter-prometheus's
//! recorder, in one run: the macro as most code calls it (a look-up per call), and a kept
//! handle.
//!
//! `cargo bench -p vitals-benches --bench facade -- --noplot`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vitals_core::facade::FacadeRecorder;
use vitals_core::Registry;

fn run(c: &mut Criterion, name: &str, recorder: &dyn metrics::Recorder) {
    let mut g = c.benchmark_group("facade_counter");
    metrics::with_local_recorder(recorder, || {
        g.bench_function(format!("macro_each_call/{name}"), |b| {
            b.iter(|| metrics::counter!("jobs", "queue" => "mail", "kind" => "send").increment(1));
        });
        let handle = metrics::counter!("jobs", "queue" => "mail", "kind" => "send");
        g.bench_function(format!("kept_handle/{name}"), |b| {
            b.iter(|| black_box(&handle).increment(1));
        });
    });
    g.finish();
}

fn counters(c: &mut Criterion) {
    let vitals = FacadeRecorder::new(&Registry::new());
    run(c, "vitals", &vitals);
    let exporter = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    run(c, "metrics_exporter_prometheus", &exporter);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = counters
}
criterion_main!(benches);
