//! Multi-process mode next to the in-memory registry, and vitals' reading of a directory next
//! to prometheus_client's, in one process and one run:
//! `cargo bench -p vitals-benches-multiprocess -- --noplot`. BENCHMARKS.md reports
//! the ratios.
//!
//! - `mp_handle`: a counter increment and a histogram observation through a kept handle, in a
//!   registry in memory and in one in multi-process mode (the value in a mapped file).
//! - `mp_scrape`: the text exposition of a directory of 64 processes' files with 2,000
//!   series each (written by prometheus_client), by vitals' `MultiProcessCollector`; then the
//!   same directory read by prometheus_client's `MultiProcessCollector` and
//!   `generate_latest`, timed in Python the same way as vitals is timed just before it
//!   (median of 10 scrapes each), and printed as a ratio.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use vitals_core::multiprocess::MultiProcessCollector;
use vitals_core::Registry;

const PROCESSES: usize = 64;
const SERIES: usize = 2000;

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vitals-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn handles(c: &mut Criterion) {
    let dir = temp_dir("handles");
    let memory = Registry::new();
    let mapped = Registry::multiprocess(&dir).expect("a multi-process directory");
    let mut g = c.benchmark_group("mp_handle");
    for (name, registry) in [("memory", &memory), ("multiprocess", &mapped)] {
        let counter = registry.counter("jobs", "Jobs.").register().unwrap();
        g.bench_function(format!("counter_inc/{name}"), |b| {
            b.iter(|| black_box(&counter).inc())
        });
        let histogram = registry
            .histogram("latency_seconds", "Latency.")
            .register()
            .unwrap();
        let mut v = 0.0;
        g.bench_function(format!("histogram_observe/{name}"), |b| {
            b.iter(|| {
                v = if v > 2.0 { 0.0 } else { v + 0.013 };
                black_box(&histogram).observe(black_box(v));
            });
        });
    }
    g.finish();
}

/// Writes the directory with prometheus_client itself, as 64 processes would: each process
/// identifier writes its own file of 2,000 counter series.
fn write_directory(dir: &Path) {
    let script = format!(
        r#"
import prometheus_client.values as values
from prometheus_client import Counter
ident = [0]
values.ValueClass = values.MultiProcessValue(lambda: ident[0])
for p in range({PROCESSES}):
    ident[0] = 10000 + p
    c = Counter("bench_requests", "Requests.", ["route", "status"], registry=None)
    for i in range({SERIES}):
        c.labels("/route/%d" % (i % 400), str(200 + i // 400)).inc(i + p)
"#
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .status()
        .expect("python3 runs (apt-get install -y python3; pip install prometheus_client)");
    assert!(status.success(), "prometheus_client wrote the directory");
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// prometheus_client's scrape of `dir`: the median of 10 `generate_latest` calls.
fn python_scrape(dir: &Path) -> Duration {
    let script = format!(
        r#"
import time
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry, path={dir:?})
times = []
for _ in range(10):
    start = time.perf_counter()
    generate_latest(registry)
    times.append(time.perf_counter() - start)
times.sort()
print(times[len(times) // 2])
"#,
        dir = dir.to_str().expect("a UTF-8 path")
    );
    let output = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_secs_f64(seconds)
}

fn scrape(c: &mut Criterion) {
    let dir = temp_dir("scrape");
    write_directory(&dir);
    let registry = Registry::new();
    registry
        .register_collector("multiprocess", MultiProcessCollector::new(&dir).unwrap())
        .unwrap();
    let text = vitals_core::encoding::text::encode(&registry);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("bench_requests_total{"))
            .count(),
        SERIES,
        "every series, merged across the processes"
    );
    let ours = median(
        (0..10)
            .map(|_| {
                let start = Instant::now();
                black_box(vitals_core::encoding::text::encode(&registry));
                start.elapsed()
            })
            .collect(),
    );
    let python = python_scrape(&dir);
    println!(
        "mp_scrape: {PROCESSES} processes x {SERIES} series: vitals {ours:?}, prometheus_client \
         {python:?} per scrape (median of 10 each): {:.1}x faster",
        python.as_secs_f64() / ours.as_secs_f64()
    );
    let mut g = c.benchmark_group("mp_scrape");
    g.sample_size(10);
    g.bench_function("vitals_64x2000", |b| {
        b.iter(|| black_box(vitals_core::encoding::text::encode(&registry)));
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = handles, scrape
}
criterion_main!(benches);
