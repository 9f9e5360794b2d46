//! vitals-core next to its peers, on the same workloads in one process and one run:
//! `cargo bench -p vitals-benches --bench core`. BENCHMARKS.md reports the ratios.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use measured::label::StaticLabelSet;
use measured::metric::histogram::Thresholds;
use measured::metric::name::MetricName;
use measured::metric::MetricFamilyEncoding;
use measured::{FixedCardinalityLabel, LabelGroup};
use metrics::Recorder as _;
use vitals_benches::latencies;
use vitals_core::{
    encoding::{openmetrics, text},
    Buckets, Registry,
};

/// The 14 latency bounds every crate's histograms use.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUSES: [&str; 3] = ["200", "404", "500"];
/// Random observations, indexed with a mask.
const VALUES: usize = 4096;

#[derive(FixedCardinalityLabel, Clone, Copy, Debug, PartialEq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

#[derive(FixedCardinalityLabel, Clone, Copy, Debug, PartialEq)]
enum Status {
    #[label(rename = "200")]
    Ok,
    #[label(rename = "404")]
    NotFound,
    #[label(rename = "500")]
    Error,
}

#[derive(LabelGroup, Clone, Copy, Debug)]
#[label(set = RequestSet)]
struct Request {
    method: Method,
    status: Status,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    status: &'static str,
}

/// Our typed, dense label set for the same two labels: a method and a status index.
#[derive(Clone, Copy)]
struct DenseRequest {
    method: usize,
    status: usize,
}

impl vitals_core::LabelSet for DenseRequest {
    const NAMES: &'static [&'static str] = &["method", "status"];

    fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
        visit(METHODS[self.method]);
        visit(STATUSES[self.status]);
    }
}

impl vitals_core::DenseLabelSet for DenseRequest {
    const CARDINALITY: usize = METHODS.len() * STATUSES.len();

    fn dense_index(&self) -> usize {
        self.method * STATUSES.len() + self.status
    }
}

/// The label sets of the lookup workloads, cycled through in order.
fn combos() -> Vec<(usize, usize)> {
    (0..METHODS.len())
        .flat_map(|m| (0..STATUSES.len()).map(move |s| (m, s)))
        .collect()
}

/// A metrics-exporter-prometheus recorder with our buckets, and a thread that runs its upkeep
/// (it buffers raw histogram samples until then) for as long as the returned guard lives.
fn metrics_recorder() -> (
    metrics_exporter_prometheus::PrometheusRecorder,
    std::sync::mpsc::SyncSender<()>,
) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&BOUNDS)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let (stop, stopped) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        // Until told to stop or the sender is dropped (a dropped sender must end the thread,
        // not spin: it would steal a core from every benchmark that follows).
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(Duration::from_millis(100))
        {
            handle.run_upkeep();
        }
    });
    (recorder, stop)
}

fn counter_handle(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_inc_handle");
    let bare = AtomicU64::new(0);
    g.bench_function("bare_atomic", |b| {
        b.iter(|| black_box(&bare).fetch_add(1, Ordering::Relaxed))
    });
    let ours = Registry::new().counter("c", "h").register().unwrap();
    g.bench_function("vitals", |b| b.iter(|| black_box(&ours).inc()));
    let measured = measured::Counter::new();
    g.bench_function("measured", |b| b.iter(|| black_box(&measured).inc()));
    let prometheus = prometheus::IntCounter::new("c", "h").unwrap();
    g.bench_function("prometheus", |b| b.iter(|| black_box(&prometheus).inc()));
    let client = prometheus_client::metrics::counter::Counter::<u64>::default();
    g.bench_function("prometheus_client", |b| b.iter(|| black_box(&client).inc()));
    let (recorder, _upkeep) = metrics_recorder();
    let key = metrics::Key::from_name("c");
    let metadata = metrics::Metadata::new("bench", metrics::Level::INFO, None);
    let metrics = recorder.register_counter(&key, &metadata);
    g.bench_function("metrics", |b| b.iter(|| black_box(&metrics).increment(1)));
    g.finish();
}

/// One increment with a lookup of a 2-label set every time, on `threads` threads.
fn counter_lookup(c: &mut Criterion) {
    let combos = combos();
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("counter_inc_2_label_lookup_{threads}_threads"));
        let registry = Registry::new();
        let ours = registry
            .counter("requests", "h")
            .label_names(["method", "status"])
            .register()
            .unwrap();
        run_threads(&mut g, "vitals_label_values", threads, |i| {
            let (m, s) = combos[i % combos.len()];
            ours.with_label_values(&[METHODS[m], STATUSES[s]])
                .unwrap()
                .inc();
        });
        run_threads(&mut g, "vitals_labels_by_name", threads, |i| {
            let (m, s) = combos[i % combos.len()];
            ours.with_labels(&[("method", METHODS[m]), ("status", STATUSES[s])])
                .unwrap()
                .inc();
        });
        let dense = registry
            .counter("requests_dense", "h")
            .typed_labels::<DenseRequest>()
            .register_dense()
            .unwrap();
        run_threads(&mut g, "vitals_dense", threads, |i| {
            let (method, status) = combos[i % combos.len()];
            dense.get(&DenseRequest { method, status }).inc();
        });
        let measured = measured::CounterVec::with_label_set(RequestSet {
            method: StaticLabelSet::new(),
            status: StaticLabelSet::new(),
        });
        run_threads(&mut g, "measured_dense", threads, |i| {
            let (m, s) = combos[i % combos.len()];
            measured.inc(Request {
                method: Method::decode(m),
                status: Status::decode(s),
            });
        });
        let prometheus = prometheus::IntCounterVec::new(
            prometheus::Opts::new("requests", "h"),
            &["method", "status"],
        )
        .unwrap();
        run_threads(&mut g, "prometheus", threads, |i| {
            let (m, s) = combos[i % combos.len()];
            prometheus
                .with_label_values(&[METHODS[m], STATUSES[s]])
                .inc();
        });
        let client = prometheus_client::metrics::family::Family::<
            RequestLabels,
            prometheus_client::metrics::counter::Counter,
        >::default();
        run_threads(&mut g, "prometheus_client", threads, |i| {
            let (m, s) = combos[i % combos.len()];
            client
                .get_or_create(&RequestLabels {
                    method: METHODS[m],
                    status: STATUSES[s],
                })
                .inc();
        });
        let (recorder, _upkeep) = metrics_recorder();
        run_threads(&mut g, "metrics", threads, |i| {
            let (m, s) = combos[i % combos.len()];
            metrics::with_local_recorder(&recorder, || {
                let labels = [("method", METHODS[m]), ("status", STATUSES[s])];
                metrics::counter!("requests", &labels).increment(1);
            });
        });
        g.finish();
    }
}

/// Benchmarks `op(i)` on `threads` threads at once (see [`vitals_benches::time_on_threads`]).
fn run_threads<F>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    threads: usize,
    op: F,
) where
    F: Fn(usize) + Sync,
{
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            #[allow(clippy::cast_possible_truncation)] // an iteration index, used modulo a table
            vitals_benches::time_on_threads(iters, threads as u64, |i| op(i as usize))
        });
    });
}

fn histogram_observe(c: &mut Criterion) {
    let values = latencies(VALUES);
    let v = |i: usize| values[i & (VALUES - 1)];
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("histogram_observe_handle_{threads}_threads"));
        let ours = Registry::new()
            .histogram("h", "h")
            .buckets(Buckets::new(BOUNDS).unwrap())
            .register()
            .unwrap();
        run_threads(&mut g, "vitals", threads, |i| ours.observe(v(i)));
        let measured = measured::Histogram::<14>::with_metadata(Thresholds::with_buckets(BOUNDS));
        run_threads(&mut g, "measured", threads, |i| {
            measured.observe(v(i));
        });
        let prometheus = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("h", "h").buckets(BOUNDS.to_vec()),
        )
        .unwrap();
        run_threads(&mut g, "prometheus", threads, |i| prometheus.observe(v(i)));
        let client = prometheus_client::metrics::histogram::Histogram::new(BOUNDS);
        run_threads(&mut g, "prometheus_client", threads, |i| {
            client.observe(v(i))
        });
        let (recorder, _upkeep) = metrics_recorder();
        let key = metrics::Key::from_name("h");
        let metadata = metrics::Metadata::new("bench", metrics::Level::INFO, None);
        let metrics = recorder.register_histogram(&key, &metadata);
        run_threads(&mut g, "metrics", threads, |i| metrics.record(v(i)));
        g.finish();
    }
}

/// One request through the HTTP recorder that every adapter shares (start, status, finish),
/// next to the floor: the same four updates through handles kept by the caller, with no
/// lookup and no guard.
fn http_recorder(c: &mut Criterion) {
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("http_recorder_{threads}_threads"));
        let registry = Registry::new();
        let recorder = vitals_core::http::HttpMetrics::builder(&registry)
            .build()
            .unwrap();
        run_threads(&mut g, "vitals_request", threads, |_| {
            let mut guard = recorder.start("GET", Some("/users/{id}"));
            guard.response(200);
            guard.finish();
        });
        let floor = Registry::new();
        let in_flight_family = floor
            .gauge("in_flight", "h")
            .label_names(["method", "route"])
            .register()
            .unwrap();
        let in_flight = in_flight_family
            .with_label_values(&["GET", "/users/{id}"])
            .unwrap();
        let total = floor.counter("total", "h").register().unwrap();
        let duration = floor.histogram("duration", "h").register().unwrap();
        run_threads(&mut g, "kept_handles_floor", threads, |_| {
            let start = Instant::now();
            in_flight.inc();
            total.inc();
            duration.observe(start.elapsed().as_secs_f64());
            in_flight.dec();
        });
        g.finish();
    }
}

/// Text encoding of `counters` counter series and `histograms` histogram series.
fn encoding(c: &mut Criterion) {
    let values = latencies(VALUES);
    for (counters, histograms) in [(10_000, 0), (0, 1_000), (9_000, 1_000)] {
        let series = counters + histograms;
        let label = match (counters, histograms) {
            (c, 0) => format!("{c}_counters"),
            (0, h) => format!("{h}_histograms_14_buckets"),
            (c, h) => format!("{c}_counters_and_{h}_histograms"),
        };
        let mut g = c.benchmark_group("text_encoding");
        g.throughput(Throughput::Elements(series as u64));
        g.sample_size(30);

        let registry = Registry::new();
        let ours_c = registry
            .counter("requests", "h")
            .label_names(["kind"])
            .series_cap(series)
            .register()
            .unwrap();
        let ours_h = registry
            .histogram("latency", "h")
            .buckets(Buckets::new(BOUNDS).unwrap())
            .label_names(["kind"])
            .series_cap(series)
            .register()
            .unwrap();
        let prometheus = prometheus::Registry::new();
        let prom_c =
            prometheus::IntCounterVec::new(prometheus::Opts::new("requests", "h"), &["kind"])
                .unwrap();
        let prom_h = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("latency", "h").buckets(BOUNDS.to_vec()),
            &["kind"],
        )
        .unwrap();
        prometheus.register(Box::new(prom_c.clone())).unwrap();
        prometheus.register(Box::new(prom_h.clone())).unwrap();
        let mut client = prometheus_client::registry::Registry::default();
        let client_c = prometheus_client::metrics::family::Family::<
            Vec<(String, String)>,
            prometheus_client::metrics::counter::Counter,
        >::default();
        let client_h = prometheus_client::metrics::family::Family::<
            Vec<(String, String)>,
            prometheus_client::metrics::histogram::Histogram,
        >::new_with_constructor(|| {
            prometheus_client::metrics::histogram::Histogram::new(BOUNDS)
        });
        client.register("requests", "h", client_c.clone());
        client.register("latency", "h", client_h.clone());
        let measured_c = measured::CounterVec::with_label_set(KindSet {
            kind: paracord::ParaCord::default(),
        });
        let measured_h = measured::HistogramVec::with_label_set_and_metadata(
            KindSet {
                kind: paracord::ParaCord::default(),
            },
            Thresholds::with_buckets(BOUNDS),
        );
        let (recorder, _upkeep) = metrics_recorder();

        for i in 0..series {
            let kind = i.to_string();
            let v = values[i % VALUES];
            if i < counters {
                ours_c.with_label_values(&[&kind]).unwrap().inc();
                prom_c.with_label_values(&[&kind]).inc();
                client_c
                    .get_or_create(&vec![("kind".into(), kind.clone())])
                    .inc();
                measured_c.inc(Kind { kind: &kind });
                metrics::with_local_recorder(&recorder, || {
                    metrics::counter!("requests", "kind" => kind.clone()).increment(1);
                });
            } else {
                ours_h.with_label_values(&[&kind]).unwrap().observe(v);
                prom_h.with_label_values(&[&kind]).observe(v);
                client_h
                    .get_or_create(&vec![("kind".into(), kind.clone())])
                    .observe(v);
                measured_h.observe(Kind { kind: &kind }, v);
                metrics::with_local_recorder(&recorder, || {
                    metrics::histogram!("latency", "kind" => kind.clone()).record(v);
                });
            }
        }
        let handle = recorder.handle();
        handle.run_upkeep();

        let mut buffer = String::new();
        g.bench_function(BenchmarkId::new("vitals", &label), |b| {
            b.iter(|| {
                buffer.clear();
                text::encode_into(&registry, &mut buffer);
                black_box(buffer.len())
            })
        });
        g.bench_function(BenchmarkId::new("vitals_openmetrics", &label), |b| {
            b.iter(|| {
                buffer.clear();
                openmetrics::encode_into(&registry, &mut buffer);
                black_box(buffer.len())
            })
        });
        if histograms == 0 {
            // The exporter's gzip: the same encoder settings (fastest level).
            g.bench_function(BenchmarkId::new("vitals_text_gzip", &label), |b| {
                b.iter(|| {
                    buffer.clear();
                    text::encode_into(&registry, &mut buffer);
                    let mut gz = flate2::write::GzEncoder::new(
                        Vec::with_capacity(buffer.len() / 4),
                        flate2::Compression::fast(),
                    );
                    std::io::Write::write_all(&mut gz, buffer.as_bytes()).unwrap();
                    black_box(gz.finish().unwrap().len())
                })
            });
        }
        let mut enc = measured::text::BufferedTextEncoder::new();
        g.bench_function(BenchmarkId::new("measured", &label), |b| {
            b.iter(|| {
                measured_c
                    .collect_family_into(MetricName::from_str("requests"), &mut enc)
                    .unwrap();
                measured_h
                    .collect_family_into(MetricName::from_str("latency"), &mut enc)
                    .unwrap();
                black_box(enc.finish().len())
            })
        });
        let mut out = String::new();
        g.bench_function(BenchmarkId::new("prometheus", &label), |b| {
            b.iter(|| {
                out.clear();
                prometheus::TextEncoder::new()
                    .encode_utf8(&prometheus.gather(), &mut out)
                    .unwrap();
                black_box(out.len())
            })
        });
        // prometheus-client's text encoder writes OpenMetrics: compare it with ours of that format.
        g.bench_function(BenchmarkId::new("prometheus_client", &label), |b| {
            b.iter(|| {
                out.clear();
                prometheus_client::encoding::text::encode(&mut out, &client).unwrap();
                black_box(out.len())
            })
        });
        g.bench_function(BenchmarkId::new("metrics", &label), |b| {
            b.iter(|| black_box(handle.render().len()))
        });
        g.finish();
    }
}

#[derive(LabelGroup)]
#[label(set = KindSet)]
struct Kind<'a> {
    #[label(dynamic_with = paracord::ParaCord)]
    kind: &'a str,
}

/// First insertion of 100,000 new label sets into a fresh family.
fn insertion(c: &mut Criterion) {
    const N: usize = 100_000;
    let keys: Vec<String> = (0..N).map(|i| format!("/users/{i}")).collect();
    let mut g = c.benchmark_group("insert_100k_new_label_sets");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("vitals", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let family = Registry::new()
                    .counter("c", "h")
                    .label_names(["route"])
                    .series_cap(N)
                    .register()
                    .unwrap();
                let start = Instant::now();
                for k in &keys {
                    family.with_label_values(&[k]).unwrap().inc();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("measured", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let family = measured::CounterVec::with_label_set(KindSet {
                    kind: paracord::ParaCord::default(),
                });
                let start = Instant::now();
                for k in &keys {
                    family.inc(Kind { kind: k });
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("prometheus", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let family =
                    prometheus::IntCounterVec::new(prometheus::Opts::new("c", "h"), &["route"])
                        .unwrap();
                let start = Instant::now();
                for k in &keys {
                    family.with_label_values(&[k]).inc();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("prometheus_client", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let family = prometheus_client::metrics::family::Family::<
                    Vec<(String, String)>,
                    prometheus_client::metrics::counter::Counter,
                >::default();
                let start = Instant::now();
                for k in &keys {
                    family
                        .get_or_create(&vec![("route".to_owned(), k.clone())])
                        .inc();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("metrics", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (recorder, _upkeep) = metrics_recorder();
                let start = Instant::now();
                metrics::with_local_recorder(&recorder, || {
                    for k in &keys {
                        metrics::counter!("c", "route" => k.clone()).increment(1);
                    }
                });
                total += start.elapsed();
            }
            total
        })
    });
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
    targets = counter_handle, counter_lookup, histogram_observe, http_recorder, encoding, insertion
}
criterion_main!(benches);
