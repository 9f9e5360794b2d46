//! vitals-tower on real axum routers, through `ServiceExt::oneshot`: every point of the
//! golden signals, for the cases that peers get wrong.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use vitals_core::http::Naming;
use vitals_core::route::{RouteTemplater, UNMATCHED_ROUTE};
use vitals_core::Registry;
use vitals_tower::MetricsLayer;

fn layer(registry: &Registry) -> MetricsLayer {
    MetricsLayer::builder().registry(registry).build().unwrap()
}

fn app(registry: &Registry) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|| async { "user" }).post(|| async { "created" }),
        )
        .route("/health", get(|| async { "ok" }))
        .route(
            "/error",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/stream",
            get(|| async {
                // Five chunks, 40 ms apart: 160 ms at least between the first and the last.
                let chunks = stream::unfold(0u8, |i| async move {
                    if i == 5 {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                    Some((Ok::<_, Infallible>(Bytes::from(vec![b'x'; 100])), i + 1))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/panic",
            get(|| async {
                panic!("handler bug");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .nest(
            "/api",
            Router::new().nest(
                "/v1",
                Router::new().route("/orders/{order_id}", get(|| async { "order" })),
            ),
        )
        .layer(layer(registry))
}

async fn send(app: &Router, method: &str, uri: &str) -> (StatusCode, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn total(registry: &Registry, method: &str, route: &str, status: &str) -> Option<f64> {
    registry.get_sample_value(
        "http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
}

fn in_flight(registry: &Registry, method: &str, route: &str) -> Option<f64> {
    registry.get_sample_value(
        "http_requests_in_flight",
        &[("method", method), ("route", route)],
    )
}

#[tokio::test]
async fn routes_are_templates_under_nesting_and_methods_are_normalised() {
    let registry = Registry::new();
    let app = app(&registry);
    assert_eq!(send(&app, "GET", "/users/42").await.0, StatusCode::OK);
    assert_eq!(send(&app, "POST", "/users/43").await.0, StatusCode::OK);
    assert_eq!(send(&app, "HEAD", "/users/44").await.0, StatusCode::OK);
    assert_eq!(
        send(&app, "GET", "/api/v1/orders/7").await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "PROPFIND", "/users/45").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&app, "GET", "/error").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(1.0));
    assert_eq!(total(&registry, "POST", "/users/{id}", "200"), Some(1.0));
    assert_eq!(total(&registry, "HEAD", "/users/{id}", "200"), Some(1.0));
    assert_eq!(
        total(&registry, "GET", "/api/v1/orders/{order_id}", "200"),
        Some(1.0),
        "the full template under nested routers"
    );
    assert_eq!(
        total(&registry, "_OTHER", UNMATCHED_ROUTE, "405"),
        Some(1.0)
    );
    assert_eq!(total(&registry, "GET", "/error", "500"), Some(1.0));
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(!text.contains("/users/42"), "no raw path in any label");
    assert_eq!(in_flight(&registry, "GET", "/users/{id}"), Some(0.0));
}

#[tokio::test]
async fn a_flood_of_random_unmatched_paths_adds_a_constant_number_of_series() {
    let registry = Registry::new();
    let app = app(&registry);
    for i in 0..10_000u32 {
        let path = format!("/scan/{:x}/{}.php", i.wrapping_mul(2_654_435_761), i);
        assert_eq!(send(&app, "GET", &path).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "404"),
        Some(10_000.0)
    );
    let series = vitals_core::encoding::text::encode(&registry)
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .count();
    assert_eq!(series, 1, "one series for ten thousand paths");
}

#[tokio::test]
async fn latency_covers_the_whole_streaming_body() {
    let registry = Registry::new();
    let app = app(&registry);
    let (status, body) = send(&app, "GET", "/stream").await;
    assert_eq!((status, body.len()), (StatusCode::OK, 500));
    let sum = registry
        .get_sample_value(
            "http_request_duration_seconds_sum",
            &[("method", "GET"), ("route", "/stream"), ("status", "200")],
        )
        .unwrap();
    assert!(sum >= 0.16, "the clock ran until the last chunk: {sum}");
}

#[tokio::test]
async fn a_client_that_aborts_mid_body_is_counted_and_leaves_nothing_in_flight() {
    let registry = Registry::new();
    let app = app(&registry);
    let request = Request::get("/stream").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        in_flight(&registry, "GET", "/stream"),
        Some(1.0),
        "the body is still going"
    );
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap().len(), 100);
    drop(body); // the client goes away
    assert_eq!(total(&registry, "GET", "/stream", "200"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/stream"), Some(0.0));
}

#[tokio::test]
async fn a_dropped_request_future_counts_as_499() {
    let registry = Registry::new();
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .layer(layer(&registry));
    let request = Request::get("/slow").body(Body::empty()).unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(50), app.oneshot(request)).await;
    assert!(
        timed_out.is_err(),
        "the future was dropped before the response"
    );
    assert_eq!(total(&registry, "GET", "/slow", "499"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/slow"), Some(0.0));
}

#[tokio::test]
async fn a_panicking_handler_is_counted_with_or_without_catch_panic() {
    let registry = Registry::new();
    let plain = app(&registry);
    let request = Request::get("/panic").body(Body::empty()).unwrap();
    let joined = tokio::spawn(async move { plain.oneshot(request).await }).await;
    assert!(joined.is_err(), "the panic reached the task");
    assert_eq!(total(&registry, "GET", "/panic", "500"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/panic"), Some(0.0));

    let caught_registry = Registry::new();
    let caught = Router::new()
        .route(
            "/panic",
            get(|| async {
                panic!("handler bug");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(layer(&caught_registry));
    let (status, _) = send(&caught, "GET", "/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(total(&caught_registry, "GET", "/panic", "500"), Some(1.0));
}

#[tokio::test]
async fn the_endpoint_serves_negotiated_metrics_without_counting_itself() {
    let registry = Registry::new();
    let app = app(&registry);
    send(&app, "GET", "/users/1").await;
    let (status, body) = send(&app, "GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 1")
    );
    assert_eq!(
        total(&registry, "GET", "/metrics", "200"),
        None,
        "not counted"
    );
    assert_eq!(total(&registry, "GET", UNMATCHED_ROUTE, "200"), None);

    let request = Request::get("/metrics")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        vitals_core::encoding::openmetrics::CONTENT_TYPE
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.ends_with(b"# EOF\n"));
    assert_eq!(
        send(&app, "POST", "/metrics").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// The endpoint's answer to a scrape with this `Accept-Encoding`: its headers and its body,
/// decompressed if it came gzipped.
async fn scrape(app: &Router, accept_encoding: Option<&str>) -> (http::HeaderMap, String) {
    let mut request = Request::get("/metrics");
    if let Some(encoding) = accept_encoding {
        request = request.header("accept-encoding", encoding);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        body.len().to_string(),
        "Content-Length is the length of the bytes sent"
    );
    let text = if headers.contains_key("content-encoding") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .expect("a gzip stream");
        text
    } else {
        String::from_utf8(body.to_vec()).unwrap()
    };
    (headers, text)
}

#[tokio::test]
async fn the_endpoint_gzips_for_scrapers_that_accept_it_and_varies_on_both_headers() {
    let registry = Registry::new();
    let app = app(&registry);
    send(&app, "GET", "/users/1").await;
    let series = "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 1";
    // What Prometheus sends on every scrape.
    for encoding in ["gzip", "gzip, deflate, br", "*", "br;q=1.0, GZIP;Q=0.5"] {
        let (headers, text) = scrape(&app, Some(encoding)).await;
        assert_eq!(headers["content-encoding"], "gzip", "{encoding}");
        assert_eq!(headers["vary"], "Accept, Accept-Encoding");
        assert!(text.contains(series), "{encoding}: {text}");
    }
    for encoding in [
        None,
        Some("gzip;q=0"),
        Some("*;q=1, gzip;q=0"),
        Some("identity"),
    ] {
        let (headers, text) = scrape(&app, encoding).await;
        assert!(!headers.contains_key("content-encoding"), "{encoding:?}");
        assert_eq!(headers["vary"], "Accept, Accept-Encoding");
        assert!(text.contains(series), "{encoding:?}: {text}");
    }
}

#[tokio::test]
async fn openmetrics_answers_carry_created_samples_only_when_asked() {
    for asked in [false, true] {
        let registry = Registry::new();
        let app = Router::new()
            .route("/users/{id}", get(|| async { "user" }))
            .layer(
                MetricsLayer::builder()
                    .registry(&registry)
                    .created_samples(asked)
                    .build()
                    .unwrap(),
            );
        send(&app, "GET", "/users/1").await;
        let request = Request::get("/metrics")
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\nhttp_requests_total{"), "{text}");
        assert_eq!(
            text.contains("\nhttp_requests_created{"),
            asked,
            "asked: {asked}\n{text}"
        );
        assert_eq!(
            text.contains("\nhttp_request_duration_seconds_created{"),
            asked
        );
    }
}

#[tokio::test]
async fn the_endpoint_can_be_guarded_moved_counted_or_turned_off() {
    let registry = Registry::new();
    let guarded = Router::new().route("/", get(|| async { "home" })).layer(
        MetricsLayer::builder()
            .registry(&registry)
            .endpoint(Some("/internal/metrics"))
            .count_endpoint(true)
            .endpoint_access(|request: &vitals_tower::EndpointRequest<'_>| {
                request
                    .headers
                    .get("x-token")
                    .is_some_and(|v| v == "s3cret")
            })
            .build()
            .unwrap(),
    );
    assert_eq!(
        send(&guarded, "GET", "/internal/metrics").await.0,
        StatusCode::FORBIDDEN
    );
    let request = Request::get("/internal/metrics")
        .header("x-token", "s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        guarded.clone().oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&guarded, "GET", "/metrics").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "403"),
        Some(1.0),
        "counted when asked"
    );

    let other = Registry::new();
    let off = Router::new().route("/", get(|| async { "home" })).layer(
        MetricsLayer::builder()
            .registry(&other)
            .endpoint(None)
            .build()
            .unwrap(),
    );
    assert_eq!(
        send(&off, "GET", "/metrics").await.0,
        StatusCode::NOT_FOUND,
        "reaches the app"
    );
}

#[tokio::test]
async fn excluded_routes_options_and_two_registries() {
    let (a, b) = (Registry::new(), Registry::new());
    let first = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/users/{id}", get(|| async { "user" }))
        .layer(
            MetricsLayer::builder()
                .registry(&a)
                .exclude_route("/health")
                .status_classes(true)
                .naming(Naming::Prometheus)
                .build()
                .unwrap(),
        );
    let second = app(&b);
    send(&first, "GET", "/health").await;
    send(&first, "GET", "/users/1").await;
    send(&second, "GET", "/users/1").await;
    send(&second, "GET", "/users/2").await;
    assert_eq!(total(&a, "GET", "/health", "2xx"), None);
    assert_eq!(total(&a, "GET", "/users/{id}", "2xx"), Some(1.0));
    assert_eq!(total(&b, "GET", "/users/{id}", "200"), Some(2.0));
    // A second layer on the same registry with the same options: no panic, same series.
    let again = app(&b);
    send(&again, "GET", "/users/3").await;
    assert_eq!(total(&b, "GET", "/users/{id}", "200"), Some(3.0));
}

#[tokio::test]
async fn a_plain_tower_service_gets_routes_from_the_templater() {
    let registry = Registry::new();
    let service = tower::ServiceBuilder::new()
        .layer(
            MetricsLayer::builder()
                .registry(&registry)
                .route_templater(RouteTemplater::new().pattern("/files/{*path}").unwrap())
                .build()
                .unwrap(),
        )
        .service_fn(|_request: Request<Body>| async {
            Ok::<_, Infallible>(http::Response::new(Body::from("hi")))
        });
    for path in ["/orders/123", "/orders/456", "/files/a/b.txt", "/about"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(total(&registry, "GET", "/orders/{id}", "200"), Some(2.0));
    assert_eq!(total(&registry, "GET", "/files/{*path}", "200"), Some(1.0));
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "200"),
        Some(1.0),
        "a raw path"
    );
}

#[tokio::test]
async fn body_sizes_count_the_real_bytes_of_responses_and_requests() {
    let registry = Registry::new();
    let app = Router::new()
        .route(
            "/echo",
            axum::routing::post(|body: Bytes| async move { body }),
        )
        // Does not read the request body.
        .route("/ignore", axum::routing::post(|| async { "" }))
        .route(
            "/stream",
            get(|| async {
                let chunks = stream::iter(
                    (0..4).map(|_| Ok::<_, Infallible>(Bytes::from_static(b"0123456789"))),
                );
                Body::from_stream(chunks)
            }),
        )
        .layer(
            MetricsLayer::builder()
                .registry(&registry)
                .body_sizes(true)
                .build()
                .unwrap(),
        );
    let request = Request::post("/echo")
        .header("content-length", "5")
        .body(Body::from("hello"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    let chunked = Request::post("/echo")
        .body(Body::from_stream(stream::iter([Ok::<_, Infallible>(
            Bytes::from("abc"),
        )])))
        .unwrap();
    app.clone()
        .oneshot(chunked)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    send(&app, "GET", "/stream").await;
    let unread = Request::post("/ignore")
        .header("content-length", "7")
        .body(Body::from("ignored"))
        .unwrap();
    app.clone().oneshot(unread).await.unwrap();
    // Declarations near u64::MAX: a body read to its end counts its bytes, an unread one the
    // bounded declaration, and neither wraps the integer sum.
    let hostile = "18446744073709551613";
    for (route, body) in [("/echo", "hi"), ("/ignore", "unread")] {
        let lie = Request::post(route)
            .header("content-length", hostile)
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(lie).await.unwrap();
        response.into_body().collect().await.unwrap();
    }

    let size = |name: &str, method: &str, route: &str| {
        let labels = [("method", method), ("route", route)];
        (
            registry.get_sample_value(&format!("{name}_sum"), &labels),
            registry.get_sample_value(&format!("{name}_count"), &labels),
        )
    };
    assert_eq!(
        size("http_response_size_bytes", "GET", "/stream"),
        (Some(40.0), Some(1.0))
    );
    assert_eq!(
        size("http_response_size_bytes", "POST", "/echo"),
        (Some(10.0), Some(3.0))
    );
    assert_eq!(
        size("http_request_size_bytes", "POST", "/echo"),
        (Some(10.0), Some(3.0)),
        "the chunked upload, which declares no length, is measured by the bytes read, and so \
         is a body read to its end whatever it declared"
    );
    #[allow(clippy::cast_precision_loss)]
    let limit = vitals_core::http::DECLARED_LENGTH_LIMIT as f64;
    assert_eq!(
        size("http_request_size_bytes", "POST", "/ignore"),
        (Some(7.0 + limit), Some(2.0)),
        "a body the handler did not read counts its declared length, at most the limit"
    );
}

#[tokio::test]
async fn headers_only_stops_the_clock_at_the_headers() {
    let registry = Registry::new();
    let app = Router::new()
        .route(
            "/stream",
            get(|| async {
                let chunks = stream::unfold(0u8, |i| async move {
                    if i == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, Infallible>(Bytes::from_static(b"chunk")), i + 1))
                });
                Body::from_stream(chunks)
            }),
        )
        .layer(
            MetricsLayer::builder()
                .registry(&registry)
                .headers_only(true)
                .build()
                .unwrap(),
        );
    let request = Request::get("/stream").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    // Recorded as soon as the headers were ready, before any of the body was read.
    assert_eq!(total(&registry, "GET", "/stream", "200"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/stream"), Some(0.0));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 15);
    let sum = registry
        .get_sample_value(
            "http_request_duration_seconds_sum",
            &[("method", "GET"), ("route", "/stream"), ("status", "200")],
        )
        .unwrap();
    assert!(sum < 0.3, "the 300 ms body is not in the latency: {sum}");
}

#[tokio::test]
async fn errors_from_the_inner_service_are_counted_as_500() {
    let registry = Registry::new();
    let failing = tower::ServiceBuilder::new()
        .layer(
            MetricsLayer::builder()
                .registry(&registry)
                .route_templater(RouteTemplater::new().pattern("/jobs/{id}").unwrap())
                .build()
                .unwrap(),
        )
        .service_fn(|_request: Request<Body>| async {
            Err::<http::Response<Body>, _>(std::io::Error::other("backend down"))
        });
    let request = Request::get("/jobs/7").body(Body::empty()).unwrap();
    let error = failing.oneshot(request).await.unwrap_err();
    assert_eq!(error.to_string(), "backend down");
    assert_eq!(total(&registry, "GET", "/jobs/{id}", "500"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/jobs/{id}"), Some(0.0));
}

/// A real WebSocket through a real server: the upgrade is counted with status 101, stays out of
/// the latency histogram, leaves nothing in flight, and the connection still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_counted_but_not_timed_and_still_works() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let registry = Registry::new();
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    // Echo one message back.
                    if let Some(Ok(Message::Text(text))) = socket.recv().await {
                        let _ = socket.send(Message::Text(text)).await;
                    }
                })
            }),
        )
        .layer(layer(&registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // A masked text frame from the client; the server's echo comes back unmasked.
    let payload = b"ping";
    let mask = [1_u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | u8::try_from(payload.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    stream.write_all(&frame).await.unwrap();
    let mut echo = [0_u8; 6];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"\x81\x04ping");
    drop(stream);

    assert_eq!(total(&registry, "GET", "/ws", "101"), Some(1.0));
    let timed = registry.get_sample_value(
        "http_request_duration_seconds_count",
        &[("method", "GET"), ("route", "/ws"), ("status", "101")],
    );
    assert_eq!(timed, None, "an upgraded connection is not a latency");
    assert_eq!(in_flight(&registry, "GET", "/ws"), Some(0.0));
    server.abort();
}

#[tokio::test]
async fn a_served_router_records_each_route_under_its_own_template() {
    use tower::Layer as _;

    // As `axum::serve` runs a router: each route's service is wrapped once, and its clones
    // (one per request) share what the layer keeps per route.
    let registry = Registry::new();
    let app = app(&registry).with_state(());
    for _ in 0..3 {
        assert_eq!(send(&app, "GET", "/users/1").await.0, StatusCode::OK);
        assert_eq!(send(&app, "POST", "/users/2").await.0, StatusCode::OK);
        assert_eq!(send(&app, "GET", "/health").await.0, StatusCode::OK);
        assert_eq!(send(&app, "GET", "/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            send(&app, "PUT", "/users/3").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(3.0));
    assert_eq!(total(&registry, "POST", "/users/{id}", "200"), Some(3.0));
    assert_eq!(total(&registry, "GET", "/health", "200"), Some(3.0));
    assert_eq!(total(&registry, "GET", UNMATCHED_ROUTE, "404"), Some(3.0));
    assert_eq!(total(&registry, "PUT", UNMATCHED_ROUTE, "405"), Some(3.0));
    for (method, route) in [("GET", "/users/{id}"), ("POST", "/users/{id}")] {
        assert_eq!(in_flight(&registry, method, route), Some(0.0));
    }

    // One wrapped service mounted under two routes: its clones share one route hint, which
    // binds to one of them; the other route's requests are still its own.
    let registry = Registry::new();
    let service = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(Body::from("x")))
    });
    let wrapped = layer(&registry).layer(service);
    let app = Router::new()
        .route_service("/a", wrapped.clone())
        .route_service("/b/{id}", wrapped)
        .with_state(());
    for i in 0..4 {
        assert_eq!(send(&app, "GET", "/a").await.0, StatusCode::OK);
        assert_eq!(
            send(&app, "GET", &format!("/b/{i}")).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(total(&registry, "GET", "/a", "200"), Some(4.0));
    assert_eq!(total(&registry, "GET", "/b/{id}", "200"), Some(4.0));
    assert_eq!(in_flight(&registry, "GET", "/a"), Some(0.0));
    assert_eq!(in_flight(&registry, "GET", "/b/{id}"), Some(0.0));
}

#[tokio::test]
async fn nested_services_share_the_unmatched_value_unless_a_templater_names_them() {
    fn app(layer: MetricsLayer) -> Router {
        let files = tower::service_fn(|_request: Request<Body>| async {
            Ok::<_, Infallible>(axum::response::Response::new(Body::from("a file")))
        });
        Router::new()
            .route("/", get(|| async { "home" }))
            .nest_service("/static", files)
            .layer(layer)
    }
    let paths = ["/static/a.css", "/static/b/c.js", "/static", "/nope/42"];

    // axum gives a nested service's requests no `MatchedPath` (only its exact prefix has
    // one): without a templater they share the unmatched value, with their real status.
    let plain = Registry::new();
    let app_plain = app(layer(&plain));
    for path in paths {
        send(&app_plain, "GET", path).await;
    }
    assert_eq!(total(&plain, "GET", UNMATCHED_ROUTE, "200"), Some(2.0));
    assert_eq!(total(&plain, "GET", "/static", "200"), Some(1.0));
    assert_eq!(total(&plain, "GET", UNMATCHED_ROUTE, "404"), Some(1.0));

    // A templater with the service's pattern, and no built-in rules, names them; requests
    // no route matched keep the unmatched value.
    let named = Registry::new();
    let templater = RouteTemplater::new()
        .pattern("/static/{*file}")
        .unwrap()
        .learned_templates(0);
    let app_named = app(MetricsLayer::builder()
        .registry(&named)
        .route_templater(templater)
        .build()
        .unwrap());
    for path in paths {
        send(&app_named, "GET", path).await;
    }
    assert_eq!(total(&named, "GET", "/static/{*file}", "200"), Some(2.0));
    assert_eq!(total(&named, "GET", "/static", "200"), Some(1.0));
    assert_eq!(total(&named, "GET", UNMATCHED_ROUTE, "404"), Some(1.0));
    assert_eq!(total(&named, "GET", UNMATCHED_ROUTE, "200"), None);
    let text = vitals_core::encoding::text::encode(&named);
    assert!(
        !text.contains("a.css") && !text.contains("/nope"),
        "no raw path"
    );
}

#[tokio::test]
async fn a_timeout_inside_the_layer_is_recorded_as_answered_and_one_outside_cannot_be() {
    use tower_http::timeout::TimeoutLayer;
    let slow = || {
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        })
    };
    let timeout =
        || TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_millis(50));

    // The recommended order: the timeout inside (added first), so its answer passes through
    // the metrics layer like any other.
    let registry = Registry::new();
    let inside = Router::new()
        .route("/slow", slow())
        .layer(timeout())
        .layer(layer(&registry));
    let (status, _) = send(&inside, "GET", "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(total(&registry, "GET", "/slow", "408"), Some(1.0));

    // The timeout outside drops the metrics layer's future: the layer never sees an answer, and
    // records what a dropped request is, 499 (documented, with the order to use instead).
    let registry = Registry::new();
    let outside = Router::new()
        .route("/slow", slow())
        .layer(layer(&registry))
        .layer(timeout());
    let (status, _) = send(&outside, "GET", "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(total(&registry, "GET", "/slow", "408"), None);
    assert_eq!(total(&registry, "GET", "/slow", "499"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/slow"), Some(0.0));
}
