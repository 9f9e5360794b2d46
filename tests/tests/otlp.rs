//! OTLP/HTTP export, decoded by Python's `opentelemetry-proto`: names, attributes, values,
//! bucket counts and quantiles match what was recorded; exports repeat, a refused export is
//! counted and the next one sends everything; shutdown flushes.

use std::time::Duration;

use vitals_core::otlp::{OtlpExporter, PushError, Retry};
use vitals_core::{Buckets, Registry};
use vitals_tests::http::CaptureServer;
use vitals_tests::prometheus::poll;
use vitals_tests::python_decode_otlp;

fn registry() -> Registry {
    let registry = Registry::new();
    let prod = registry.with_const_labels(&[("env", "prod")]).unwrap();
    prod.counter("jobs", "Jobs processed.")
        .label_names(["queue"])
        .register()
        .unwrap()
        .with_labels(&[("queue", "emails")])
        .unwrap()
        .inc_by_with_exemplar(42, &[("trace_id", "abc123")])
        .unwrap();
    registry
        .gauge("queue_depth", "Jobs waiting.")
        .register()
        .unwrap()
        .set(-3);
    registry
        .float_gauge("fill_ratio", "How full.")
        .unit("ratio")
        .register()
        .unwrap()
        .set(0.25);
    let latency = registry
        .histogram("job_duration", "Time per job.")
        .unit("seconds")
        .buckets(Buckets::new([0.1, 1.0]).unwrap())
        .register()
        .unwrap();
    latency.observe(0.05);
    latency
        .observe_with_exemplar(0.5, &[("trace_id", "def456")])
        .unwrap();
    latency.observe(2.0);
    let sizes = registry
        .summary("payload_bytes", "Payload sizes.")
        .quantiles(&[0.5])
        .register()
        .unwrap();
    for v in [100.0, 200.0, 300.0] {
        sizes.observe(v);
    }
    registry
        .info("build", "Build.")
        .register(&[("version", "1.2.3")])
        .unwrap();
    registry
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_decode_to_what_was_recorded_and_failures_are_counted() {
    let registry = registry();
    // The first export is refused; the following ones are accepted.
    let collector = std::sync::Arc::new(CaptureServer::start(&[503]));
    let running = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .service_name("checkout")
        .resource_attribute("deployment.environment", "test")
        .header("x-tenant", "blue")
        .unwrap()
        // The refusal is counted as a failure only when it is not retried.
        .retry(Retry::never())
        .interval(Duration::from_millis(100))
        .start()
        .expect("inside a tokio runtime");
    let exported = tokio::task::spawn_blocking({
        let collector = std::sync::Arc::clone(&collector);
        move || poll(Duration::from_secs(20), || collector.requests().len() >= 3)
    });
    assert!(exported.await.unwrap(), "three periodic exports arrive");
    assert!(
        registry
            .get_sample_value("vitals_otlp_export_failures_total", &[])
            .is_some_and(|n| n >= 1.0),
        "the refused export is counted"
    );
    assert_eq!(running.last_error(), None, "later exports succeeded");

    // A change after the periodic exports reaches the collector in the final flush.
    registry
        .gauge("queue_depth", "Jobs waiting.")
        .register()
        .unwrap()
        .set(7);
    running.shutdown().await.unwrap();
    let last = collector.requests().pop().expect("the final flush arrived");
    let lines = python_decode_otlp(&last.body);
    assert!(
        line(&lines, "point queue_depth ").contains("value=7"),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protobuf_decodes_to_every_metric_type_exactly() {
    let registry = registry();
    let collector = CaptureServer::start(&[]);
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .service_name("checkout")
        .resource_attribute("deployment.environment", "test")
        .header("x-tenant", "blue")
        .unwrap();
    exporter.export().await.unwrap();
    let request = collector.requests().pop().expect("one export arrived");
    assert_eq!(request.request_line, "POST /v1/metrics HTTP/1.1");
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(header("x-tenant").as_deref(), Some("blue"));

    let lines = python_decode_otlp(&request.body);
    assert!(
        lines.contains(&"resource service.name=checkout".to_owned()),
        "{lines:#?}"
    );
    assert!(lines.contains(&"resource deployment.environment=test".to_owned()));
    assert!(lines.contains(&"scope vitals".to_owned()));

    assert_eq!(
        line(&lines, "metric jobs "),
        "metric jobs unit= kind=sum temporality=2 monotonic=True"
    );
    assert_eq!(
        line(&lines, "point jobs "),
        "point jobs {env=prod,queue=emails} value=42 start=True exemplars=[{trace_id=abc123}:42.0]"
    );
    assert_eq!(
        line(&lines, "point queue_depth "),
        "point queue_depth {} value=-3 start=False exemplars=[]"
    );
    assert_eq!(
        line(&lines, "metric fill_ratio "),
        "metric fill_ratio unit=1 kind=gauge"
    );
    assert!(line(&lines, "point fill_ratio ").contains("value=0.25"));
    assert_eq!(
        line(&lines, "metric job_duration_seconds "),
        "metric job_duration_seconds unit=s kind=histogram temporality=2"
    );
    assert_eq!(
        line(&lines, "point job_duration_seconds "),
        "point job_duration_seconds {} count=3 sum=2.55 buckets=[1, 1, 1] bounds=[0.1, 1.0] \
         start=True exemplars=[{trace_id=def456}:0.5]"
    );
    let summary = line(&lines, "point payload_bytes ");
    assert!(summary.starts_with("point payload_bytes {} count=3 sum=600.0 quantiles=[0.5:"));
    let median: f64 = summary
        .split("quantiles=[0.5:")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!((median - 200.0).abs() <= 2.0, "within 1%: {median}");
    assert_eq!(
        line(&lines, "point build "),
        "point build {version=1.2.3} value=1 start=False exemplars=[]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_keeps_the_collectors_answer_and_shutdown_reports_the_final_flush() {
    let registry = registry();
    let collector = CaptureServer::start(&[400, 400]);
    let exporter = OtlpExporter::new(&registry, &collector.url()).unwrap();
    match exporter.export().await {
        Err(PushError::Rejected { status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(body, "refused by the test");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Stopped before its first tick: the final flush is the only export, and it is refused.
    let running = exporter
        .interval(Duration::from_secs(3600))
        .start()
        .expect("inside a tokio runtime");
    let flush = running.shutdown().await;
    assert!(
        matches!(flush, Err(PushError::Rejected { status: 400, .. })),
        "{flush:?}"
    );
    assert_eq!(collector.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_exemplars_go_into_the_exemplar_trace_and_span_fields() {
    let registry = Registry::new();
    let http = vitals_core::http::HttpMetrics::builder(&registry)
        .build()
        .unwrap();
    let mut guard = http.start("GET", Some("/traced"));
    guard.traceparent(Some(
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ));
    guard.response(200);
    guard.finish();
    let collector = CaptureServer::start(&[]);
    let exporter = OtlpExporter::new(&registry, &collector.url()).unwrap();
    exporter.export().await.unwrap();
    let request = collector.requests().pop().expect("one export arrived");
    let lines = vitals_tests::python_decode_otlp(&request.decoded_body());
    let ids = " trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7]";
    let counter = line(&lines, "point http_requests {");
    assert!(
        counter.ends_with(&format!("exemplars=[{{}}:1.0{ids}")),
        "{counter}"
    );
    let latency = line(&lines, "point http_request_duration_seconds {");
    assert!(
        latency.contains("exemplars=[{}:") && latency.ends_with(ids),
        "{latency}"
    );
}
