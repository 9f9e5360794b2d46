//! The Prometheus text exposition, read by the real tools: `promtool check metrics` finds no
//! problem, and Python's `prometheus_client` parser reads back exactly what was recorded, for
//! every metric type and for hostile label values and help text.

use metrics_core::{
    encoding::text, Buckets, MetricFamily, MetricKind, MetricValue, ProcessCollector, Registry,
};
use vitals_tests::{promtool_check_metrics, python_parse_text};

/// Label values that break naive encoders: escapes, quotes, newlines, braces, non-ASCII.
const HOSTILE: &[&str] = &[
    "",
    "back\\slash",
    "\"quoted\"",
    "new\nline",
    "trailing\\",
    "{brace}=,",
    "ünïcödé 日本語 🚀",
    "\\n is not a newline",
    "tab\there",
];

/// A registry holding every metric type, hostile labels, a collector and an overflow.
fn registry_with_everything() -> Registry {
    let registry = Registry::new()
        .with_const_labels(&[("instance", "a \"tricky\"\\ one")])
        .unwrap();
    registry
        .register_collector("process", ProcessCollector::new())
        .unwrap();
    registry
        .info(
            "app_build",
            "Build \"information\" with a back\\slash\nand a newline.",
        )
        .register(&[("version", "1.2.3"), ("commit", "abc\"def")])
        .unwrap();
    let counter = registry
        .counter("http_requests", "HTTP requests.")
        .labels(["path"])
        .series_cap(HOSTILE.len())
        .register()
        .unwrap();
    for (i, value) in HOSTILE.iter().enumerate() {
        counter
            .labels(&[("path", value)])
            .unwrap()
            .inc_by(i as u64 + 1);
    }
    counter.labels(&[("path", "over the cap")]).unwrap().inc();
    registry
        .float_counter("busy_seconds", "Time busy.")
        .register()
        .unwrap()
        .inc_by(1.25)
        .unwrap();
    let gauges = registry
        .float_gauge("edge_values", "Special float values.")
        .labels(["kind"])
        .register()
        .unwrap();
    gauges.labels(&[("kind", "nan")]).unwrap().set(f64::NAN);
    gauges
        .labels(&[("kind", "inf")])
        .unwrap()
        .set(f64::INFINITY);
    gauges
        .labels(&[("kind", "-inf")])
        .unwrap()
        .set(f64::NEG_INFINITY);
    gauges.labels(&[("kind", "tiny")]).unwrap().set(1e-300);
    gauges.labels(&[("kind", "huge")]).unwrap().set(-1.5e300);
    registry
        .gauge("queue_depth", "Jobs waiting.")
        .register()
        .unwrap()
        .set(-3);
    let latency = registry
        .histogram("request_duration_seconds", "Request latency.")
        .labels(["route"])
        .register()
        .unwrap();
    for (i, route) in HOSTILE.iter().enumerate() {
        latency
            .labels(&[("route", route)])
            .unwrap()
            .observe(i as f64 * 0.3);
    }
    let sizes = registry
        .histogram("batch_size", "Items per batch.")
        .buckets(Buckets::linear(10.0, 10.0, 5).unwrap())
        .register()
        .unwrap();
    for v in [5.0, 15.0, 1000.0] {
        sizes.observe(v);
    }
    let summary = registry
        .summary("payload_bytes", "Payload sizes.")
        .labels(["direction"])
        .register()
        .unwrap();
    let received = summary.labels(&[("direction", "in\n")]).unwrap();
    for v in 1..=1000 {
        received.observe(f64::from(v));
    }
    // An empty summary window reports NaN quantiles.
    summary.labels(&[("direction", "out")]).unwrap();
    registry
        .register_collector("pool", || {
            Ok(vec![
                MetricFamily::gauge("db_pool_size", "Pool size.")
                    .with_sample(&[("pool", "main\"")], MetricValue::gauge(10)),
                MetricFamily::new("legacy_value", "Untyped.", MetricKind::Unknown)
                    .with_sample(&[], MetricValue::gauge(7.5)),
                MetricFamily::histogram("external_latency_seconds", "From elsewhere.")
                    .with_sample(&[], MetricValue::histogram([(0.1, 2), (1.0, 5)], 6, 3.5)),
            ])
        })
        .unwrap();
    registry
}

#[test]
fn promtool_finds_no_problem_in_an_exposition_with_every_type_and_hostile_labels() {
    let exposition = text::encode(&registry_with_everything());
    for must in [
        "_bucket{",
        "quantile=",
        "_info{",
        "NaN",
        "+Inf",
        "-Inf",
        "__overflow__",
    ] {
        assert!(exposition.contains(must), "the exposition exercises {must}");
    }
    if let Err(report) = promtool_check_metrics(&exposition) {
        panic!("{report}\n--- exposition ---\n{exposition}");
    }
}

#[test]
fn promtool_reports_a_broken_exposition() {
    // The check above could pass vacuously if promtool accepted anything.
    let broken = "# TYPE x counter\nx{a=\"unterminated} 1\n";
    assert!(promtool_check_metrics(broken).is_err());
}

#[test]
fn python_prometheus_client_reads_back_exactly_what_was_recorded() {
    let registry = registry_with_everything();
    let exposition = text::encode(&registry);
    let samples = python_parse_text(&exposition);
    let lines = exposition.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(samples.len(), lines, "one parsed sample per sample line");
    let mut hostile_seen = 0;
    for sample in &samples {
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ours = registry
            .get_sample_value(&sample.name, &labels)
            .unwrap_or_else(|| panic!("no sample {sample:?} in the registry"));
        if sample.name.starts_with("process_") {
            // Read again at our second walk: only check that it is a number.
            assert!(ours.is_finite(), "{sample:?}");
            continue;
        }
        let same = ours == sample.value
            || (ours.is_nan() && sample.value.is_nan())
            || (ours - sample.value).abs() <= 1e-12 * ours.abs();
        assert!(same, "{sample:?}: we recorded {ours}");
        if sample
            .labels
            .iter()
            .any(|(_, v)| HOSTILE.contains(&v.as_str()) && !v.is_empty())
        {
            hostile_seen += 1;
        }
    }
    assert!(
        hostile_seen >= 2 * (HOSTILE.len() - 1),
        "hostile values survived the round trip"
    );
    let counter = |path: &str| {
        samples
            .iter()
            .find(|s| {
                s.name == "http_requests_total"
                    && s.labels.iter().any(|(k, v)| k == "path" && v == path)
            })
            .map(|s| s.value)
    };
    assert_eq!(counter("new\nline"), Some(4.0));
    assert_eq!(counter("ünïcödé 日本語 🚀"), Some(7.0));
    assert_eq!(counter("__overflow__"), Some(1.0));
}
