//! Every exposition format, read by real, independent tools: `promtool check metrics` finds no
//! problem in the Prometheus text format; Python's `prometheus_client` parsers read the text
//! format and the OpenMetrics format (exemplars included) back exactly as recorded; Python's
//! `json` module reads the JSON export back to the same values. For every metric type, hostile
//! label values and help text.

use vitals_core::{
    encoding::{json, openmetrics, text},
    Buckets, MetricFamily, MetricKind, MetricValue, ProcessCollector, Registry,
};
use vitals_tests::{
    promtool_check_metrics, python_parse_json, python_parse_openmetrics, python_parse_text,
    ParsedSample,
};

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
        .label_names(["path"])
        .series_cap(HOSTILE.len() + 1)
        .register()
        .unwrap();
    for (i, value) in HOSTILE.iter().enumerate() {
        counter
            .with_labels(&[("path", value)])
            .unwrap()
            .inc_by(i as u64 + 1);
    }
    counter
        .with_labels(&[("path", "/traced")])
        .unwrap()
        // No quote in exemplar values: prometheus_client's OpenMetrics parser (0.26) toggles
        // its quote state on every `"` of an exemplar, escaped or not, and so cannot read one.
        .inc_by_with_exemplar(3, &[("trace_id", "4bf92f35\\77b3 é")])
        .unwrap();
    counter
        .with_labels(&[("path", "over the cap")])
        .unwrap()
        .inc();
    registry
        .float_counter("busy_seconds", "Time busy.")
        .register()
        .unwrap()
        .inc_by(1.25)
        .unwrap();
    let gauges = registry
        .float_gauge("edge_values", "Special float values.")
        .label_names(["kind"])
        .register()
        .unwrap();
    gauges
        .with_labels(&[("kind", "nan")])
        .unwrap()
        .set(f64::NAN);
    gauges
        .with_labels(&[("kind", "inf")])
        .unwrap()
        .set(f64::INFINITY);
    gauges
        .with_labels(&[("kind", "-inf")])
        .unwrap()
        .set(f64::NEG_INFINITY);
    gauges.with_labels(&[("kind", "tiny")]).unwrap().set(1e-300);
    gauges
        .with_labels(&[("kind", "huge")])
        .unwrap()
        .set(-1.5e300);
    registry
        .gauge("queue_depth", "Jobs waiting.")
        .register()
        .unwrap()
        .set(-3);
    let latency = registry
        .histogram("request_duration_seconds", "Request latency.")
        .label_names(["route"])
        .register()
        .unwrap();
    for (i, route) in (0_u32..).zip(HOSTILE) {
        latency
            .with_labels(&[("route", route)])
            .unwrap()
            .observe(f64::from(i) * 0.3);
    }
    latency
        .with_labels(&[("route", "/traced")])
        .unwrap()
        .observe_with_exemplar(0.042, &[("trace_id", "abc"), ("span_id", "ünï")])
        .unwrap();
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
        .label_names(["direction"])
        .register()
        .unwrap();
    let received = summary.with_labels(&[("direction", "in\n")]).unwrap();
    for v in 1..=1000 {
        received.observe(f64::from(v));
    }
    // An empty summary window reports NaN quantiles.
    summary.with_labels(&[("direction", "out")]).unwrap();
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

/// Checks every sample an independent reader read against the registry: the same value for
/// the same name and labels. Returns how many samples carried a hostile label value.
fn assert_read_back_exactly(registry: &Registry, samples: &[ParsedSample]) -> usize {
    let mut hostile_seen = 0;
    for sample in samples {
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
    hostile_seen
}

fn find<'a>(samples: &'a [ParsedSample], name: &str, label: (&str, &str)) -> &'a ParsedSample {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.iter().any(|(k, v)| k == label.0 && v == label.1))
        .unwrap_or_else(|| panic!("no {name} with {label:?}"))
}

#[test]
fn python_prometheus_client_reads_back_exactly_what_was_recorded() {
    let registry = registry_with_everything();
    let exposition = text::encode(&registry);
    let samples = python_parse_text(&exposition);
    let lines = exposition.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(samples.len(), lines, "one parsed sample per sample line");
    let hostile_seen = assert_read_back_exactly(&registry, &samples);
    assert!(
        hostile_seen >= 2 * (HOSTILE.len() - 1),
        "hostile values survived the round trip"
    );
    assert_eq!(
        find(&samples, "http_requests_total", ("path", "new\nline")).value,
        4.0
    );
    assert_eq!(
        find(
            &samples,
            "http_requests_total",
            ("path", "ünïcödé 日本語 🚀")
        )
        .value,
        7.0
    );
    assert_eq!(
        find(&samples, "http_requests_total", ("path", "__overflow__")).value,
        1.0
    );
}

#[test]
fn openmetrics_leaves_created_samples_out_unless_asked_and_python_reads_both() {
    let registry = registry_with_everything();
    let plain = openmetrics::encode(&registry);
    let samples = python_parse_openmetrics(&plain);
    assert!(!samples.is_empty());
    assert!(
        samples.iter().all(|s| !s.name.ends_with("_created")),
        "no _created sample by default"
    );
    assert!(!plain.contains("_created"), "{plain}");
    let asked = openmetrics::encode_with(
        &registry,
        openmetrics::EncodeOptions::default().created_samples(true),
    );
    let with_created = python_parse_openmetrics(&asked);
    // The same samples, plus one `_created` per counter, histogram and summary series.
    let created: Vec<_> = with_created
        .iter()
        .filter(|s| s.name.ends_with("_created"))
        .collect();
    assert_eq!(with_created.len() - created.len(), samples.len());
    assert!(created.len() >= HOSTILE.len() * 2, "{}", created.len());
}

#[test]
fn python_openmetrics_parser_reads_back_values_created_and_exemplars() {
    let registry = registry_with_everything();
    let with_created = openmetrics::EncodeOptions::default().created_samples(true);
    let exposition = openmetrics::encode_with(&registry, with_created);
    assert!(exposition.ends_with("# EOF\n"));
    // The strict parser rejects anything OpenMetrics forbids (metadata order, units, histogram
    // shape, exemplar placement and length, `# EOF`), so reading it at all is half the test.
    let samples = python_parse_openmetrics(&exposition);
    let hostile_seen = assert_read_back_exactly(&registry, &samples);
    assert!(hostile_seen >= 2 * (HOSTILE.len() - 1));
    let created = samples
        .iter()
        .filter(|s| s.name.ends_with("_created"))
        .count();
    assert!(
        created >= HOSTILE.len() * 2,
        "counters and histograms have _created: {created}"
    );

    let traced = find(&samples, "http_requests_total", ("path", "/traced"));
    let (labels, value) = traced.exemplar.clone().expect("the counter's exemplar");
    assert_eq!(
        labels,
        [("trace_id".to_owned(), "4bf92f35\\77b3 é".to_owned())]
    );
    assert_eq!(value, 3.0);
    let with_exemplar: Vec<&ParsedSample> = samples
        .iter()
        .filter(|s| {
            s.name == "request_duration_seconds_bucket"
                && s.labels.iter().any(|(k, v)| k == "route" && v == "/traced")
                && s.exemplar.is_some()
        })
        .collect();
    assert_eq!(with_exemplar.len(), 1, "one bucket holds the exemplar");
    let bucket = with_exemplar[0];
    assert!(
        bucket.labels.iter().any(|(k, v)| k == "le" && v == "0.05"),
        "{bucket:?}"
    );
    let (labels, value) = bucket.exemplar.clone().unwrap_or_default();
    assert_eq!(value, 0.042);
    assert!(labels.contains(&("span_id".to_owned(), "ünï".to_owned())));
}

#[test]
fn python_json_reader_reads_back_the_documented_shape() {
    let registry = registry_with_everything();
    let samples = python_parse_json(&json::encode(&registry));
    let hostile_seen = assert_read_back_exactly(&registry, &samples);
    assert!(hostile_seen >= 2 * (HOSTILE.len() - 1));
    assert_eq!(
        find(&samples, "http_requests_total", ("path", "new\nline")).value,
        4.0
    );
    assert_eq!(
        find(&samples, "edge_values", ("kind", "inf")).value,
        f64::INFINITY
    );
    assert!(find(&samples, "edge_values", ("kind", "nan"))
        .value
        .is_nan());
    assert_eq!(
        find(&samples, "app_build_info", ("commit", "abc\"def")).value,
        1.0
    );
    let json_created = samples
        .iter()
        .filter(|s| s.name.ends_with("_created"))
        .count();
    assert!(json_created >= HOSTILE.len() * 2, "{json_created}");
}

#[test]
fn openmetrics_leaves_out_what_the_format_forbids_and_stays_valid() {
    let registry = Registry::new();
    let signed = registry
        .histogram("temperature_celsius", "Temperatures.")
        .buckets(Buckets::new([-10.0, 0.0, 10.0]).unwrap())
        .register()
        .unwrap();
    signed.observe(-5.0);
    signed.observe(5.0);
    // Infinite observations are counted but kept out of the sum, so the sum stays a number
    // (it would be NaN otherwise, which OpenMetrics forbids).
    let infinite = registry
        .histogram("infinite", "Observations of both infinities.")
        .register()
        .unwrap();
    infinite.observe(f64::INFINITY);
    infinite.observe(f64::NEG_INFINITY);
    let skew = registry
        .summary("clock_skew_seconds", "Skews.")
        .register()
        .unwrap();
    // Ranks ⌊q·3⌋: the median is -2 (left out), the 0.9 and 0.99 quantiles are 1 (shown).
    for v in [-3.0, -2.0, 1.0, 2.0] {
        skew.observe(v);
    }
    let exposition = openmetrics::encode(&registry);
    let samples = python_parse_openmetrics(&exposition);
    let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    assert!(!names.contains(&"temperature_celsius_sum"), "{exposition}");
    assert!(!names.contains(&"temperature_celsius_count"));
    let value = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    assert_eq!(value("infinite_sum"), Some(0.0), "{exposition}");
    assert_eq!(value("infinite_count"), Some(2.0));
    assert!(!names.contains(&"clock_skew_seconds_sum"), "negative");
    assert!(names.contains(&"clock_skew_seconds_count"));
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == "temperature_celsius_bucket")
            .count(),
        4,
        "every bucket is still there"
    );
    let quantiles: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == "clock_skew_seconds")
        .map(|s| s.value)
        .collect();
    assert_eq!(quantiles.len(), 2, "{exposition}");
    assert!(quantiles.iter().all(|&q| (q - 1.0).abs() <= 0.01));
    // The Prometheus text format shows everything.
    let text = text::encode(&registry);
    assert!(text.contains("temperature_celsius_sum 0.0"), "{text}");
    assert!(
        text.contains("clock_skew_seconds{quantile=\"0.5\"} -"),
        "{text}"
    );
}

/// The registry of the `#[instrumented]` functions below, with a tricky constant label.
static FUNCTIONS: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(|| {
    Registry::new()
        .with_const_labels(&[("instance", "a \"tricky\"\\ one")])
        .unwrap()
});

#[vitals_core::instrumented(registry = FUNCTIONS, labels(team = "quo\"te\\n"))]
fn checkout(fail: bool) -> Result<u32, String> {
    if fail {
        return Err("declined".into());
    }
    Ok(1)
}

#[vitals_core::instrumented(registry = FUNCTIONS, buckets = [0.001, 0.5])]
async fn never_finishes() {
    std::future::pending::<()>().await;
}

#[test]
fn instrumented_function_metrics_pass_promtool_and_both_python_parsers() {
    use std::future::Future as _;

    checkout(false).unwrap();
    checkout(true).unwrap_err();
    assert!(std::panic::catch_unwind(checkout_panics).is_err());
    let mut future = std::pin::pin!(never_finishes());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());

    // One call in flight while these run; its future is dropped at the end of the test.
    let exposition = text::encode(&FUNCTIONS);
    for must in [
        "function_calls_total{",
        "function_calls_duration_seconds_bucket{",
        "function_calls_concurrent{",
        "le=\"0.5\"",
        "result=\"error\"",
    ] {
        assert!(exposition.contains(must), "{must}\n{exposition}");
    }
    if let Err(report) = promtool_check_metrics(&exposition) {
        panic!("{report}\n--- exposition ---\n{exposition}");
    }
    let samples = python_parse_text(&exposition);
    // Every sample read back equals what the registry holds (the helper asserts it).
    assert_read_back_exactly(&FUNCTIONS, &samples);
    assert!(
        samples.iter().any(|s| s
            .labels
            .iter()
            .any(|(k, v)| k == "team" && v == "quo\"te\\n")),
        "the constant label's quote and backslash survive the round trip"
    );
    let calls = |result: &str| {
        samples
            .iter()
            .find(|s| {
                s.name == "function_calls_total"
                    && s.labels
                        .iter()
                        .any(|(k, v)| k == "function" && v == "checkout")
                    && s.labels.iter().any(|(k, v)| k == "result" && v == result)
            })
            .map(|s| s.value)
    };
    assert_eq!(calls("ok"), Some(1.0));
    assert_eq!(calls("error"), Some(1.0));
    let in_flight = find(
        &samples,
        "function_calls_concurrent",
        ("function", "never_finishes"),
    );
    assert_eq!(in_flight.value, 1.0);

    let om = openmetrics::encode(&FUNCTIONS);
    let om_samples = python_parse_openmetrics(&om);
    assert!(
        om_samples
            .iter()
            .any(|s| s.name == "function_calls_duration_seconds_count"),
        "{om}"
    );
    assert_read_back_exactly(&FUNCTIONS, &om_samples);
}

#[vitals_core::instrumented(registry = FUNCTIONS)]
fn checkout_panics() {
    panic!("on purpose");
}
