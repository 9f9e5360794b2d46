//! Exemplars end to end: a real Prometheus, with exemplar storage on, scrapes the example app
//! after requests that carried W3C `traceparent` headers, and answers
//! `/api/v1/query_exemplars` with exactly those trace ids on the latency histogram; malformed
//! headers add none and fail no request. With the `opentelemetry` feature, the current
//! OpenTelemetry span's ids come first.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vitals_tests::http::get;
use vitals_tests::prometheus::PrometheusServer;

/// The trace ids in an exemplar query's answer.
fn trace_ids(body: &str) -> BTreeSet<String> {
    body.match_indices("\"trace_id\":\"")
        .map(|(at, needle)| {
            let rest = &body[at + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_trace_ids_of_the_requests_as_exemplars() {
    let app = axum_app::app().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(move || {
        let prometheus = PrometheusServer::start_with_flags(
            &[address],
            Duration::from_millis(500),
            &["--enable-feature=exemplar-storage"],
        );
        // One traced request per route (each route's latency series keeps its latest).
        let traced = [
            ("/", "0af7651916cd43dd8448eb211c80319c"),
            ("/users/1", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("/users/2/orders/3", "c1b2c3d4e5f60718293a4b5c6d7e8f90"),
        ];
        for (path, trace) in traced {
            let header = format!("00-{trace}-00f067aa0ba902b7-01");
            let response = get(address, path, &[("traceparent", &header)]).unwrap();
            assert_eq!(response.status, 200, "{path}");
        }
        // Malformed ones: the requests succeed, and leave no exemplar.
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-aaf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-bbf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "garbage",
        ] {
            let response = get(address, "/error", &[("traceparent", bad)]).unwrap();
            assert_eq!(response.status, 500, "the /error route answers as always");
        }
        let expected: BTreeSet<String> = traced.iter().map(|(_, t)| (*t).to_owned()).collect();
        let query = "http_request_duration_seconds_bucket{job=\"vitals\"}";
        let started = Instant::now();
        let found = loop {
            let found = trace_ids(&prometheus.query_exemplars(query));
            if found == expected || started.elapsed() > Duration::from_secs(60) {
                break found;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(found, expected, "the latency histogram's exemplars");
        let counted = trace_ids(&prometheus.query_exemplars("http_requests_total{job=\"vitals\"}"));
        assert_eq!(counted, expected, "the request counter's exemplars");
        let errors = prometheus.query_exemplars(
            "http_request_duration_seconds_bucket{job=\"vitals\",route=\"/error\"}",
        );
        assert!(trace_ids(&errors).is_empty(), "{errors}");
    })
    .await
    .unwrap();
    server.abort();
}

/// The OpenMetrics answer of `app`'s `/metrics`.
async fn openmetrics(app: &axum::Router) -> String {
    use tower::ServiceExt as _;
    let request = axum::http::Request::get("/metrics")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_current_opentelemetry_span_comes_before_the_header() {
    use opentelemetry::context::FutureExt as _;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tower::ServiceExt as _;

    let registry = vitals_core::Registry::new();
    let layer = vitals_tower::MetricsLayer::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .route("/orders/{id}", axum::routing::get(|| async { "order" }))
        .route("/carts/{id}", axum::routing::get(|| async { "cart" }))
        .layer(layer);
    let server_span = |trace: u128, span: u64, flags: TraceFlags| {
        let ids = SpanContext::new(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(span.to_be_bytes()),
            flags,
            false,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(ids)
    };
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // What a tracing layer outside the metrics layer does: the request is served with its
    // server span current.
    let send = |path: &'static str, context: Option<opentelemetry::Context>| {
        let app = app.clone();
        async move {
            let request = axum::http::Request::get(path)
                .header("traceparent", header)
                .body(axum::body::Body::empty())
                .unwrap();
            let call = app.oneshot(request);
            let response = match context {
                Some(context) => call.with_context(context).await,
                None => call.await,
            };
            assert_eq!(response.unwrap().status(), 200, "{path}");
        }
    };
    send(
        "/users/1",
        Some(server_span(0xabc, 0xdef, TraceFlags::SAMPLED)),
    )
    .await;
    // An unsampled span is not an exemplar: the header is used instead.
    send(
        "/orders/1",
        Some(server_span(0x123, 0x456, TraceFlags::default())),
    )
    .await;
    send("/carts/1", None).await;

    let text = openmetrics(&app).await;
    let exemplar_of = |route: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with("http_requests_total{") && l.contains(route))
            .unwrap_or_else(|| panic!("no counter for {route}:\n{text}"));
        line.split_once(" # ")
            .map(|(_, e)| e.to_owned())
            .unwrap_or_default()
    };
    let span = format!("trace_id=\"{:032x}\",span_id=\"{:016x}\"", 0xabc, 0xdef);
    assert!(exemplar_of("/users/{id}").contains(&span), "{text}");
    let from_header = "trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"";
    assert!(exemplar_of("/orders/{id}").contains(from_header), "{text}");
    assert!(exemplar_of("/carts/{id}").contains(from_header), "{text}");
}

/// The registry of the instrumented function below.
static TRACED: std::sync::LazyLock<vitals_core::Registry> =
    std::sync::LazyLock::new(vitals_core::Registry::new);

#[vitals_core::instrumented(registry = TRACED, buckets = [0.5, 60.0])]
fn charge(fail: bool) -> Result<(), String> {
    if fail {
        return Err("declined".into());
    }
    Ok(())
}

#[test]
fn instrumented_functions_take_the_current_span_as_their_exemplar() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    let span = |trace: u128| {
        let ids = SpanContext::new(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(0x77u64.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(ids)
    };
    // Without a span: no exemplar.
    charge(false).unwrap();
    let text = vitals_core::encoding::openmetrics::encode(&TRACED);
    assert!(!text.contains("trace_id"), "{text}");
    {
        let _current = span(0x5eed).attach();
        charge(true).unwrap_err();
    }
    // A millisecond later (calls of one function keep at most one trace per millisecond).
    std::thread::sleep(Duration::from_millis(2));
    {
        let _current = span(0xf00d).attach();
        charge(false).unwrap();
    }
    let text = vitals_core::encoding::openmetrics::encode(&TRACED);
    let exemplar = |trace: u128| format!("trace_id=\"{trace:032x}\",span_id=\"0000000000000077\"");
    let line = |start: &str, result: &str| {
        text.lines()
            .find(|l| l.starts_with(start) && l.contains(&format!("result=\"{result}\"")))
            .unwrap_or_else(|| panic!("no {start} for {result}:\n{text}"))
            .to_owned()
    };
    assert!(
        line("function_calls_total{", "error").contains(&exemplar(0x5eed)),
        "{text}"
    );
    assert!(
        line("function_calls_total{", "ok").contains(&exemplar(0xf00d)),
        "{text}"
    );
    let bucket = line("function_calls_duration_seconds_bucket{", "ok");
    assert!(
        bucket.contains("le=\"0.5\"") && bucket.contains(&exemplar(0xf00d)),
        "{text}"
    );
}
