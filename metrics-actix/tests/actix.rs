//! vitals-actix on real actix-web apps, through `actix_web::test`: the same points as
//! vitals-tower's tests.

use std::time::Duration;

use actix_web::body::MessageBody as _;
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web, App, HttpResponse};
use bytes::Bytes;
use futures_util::FutureExt as _;
use vitals_actix::Metrics;
use vitals_core::route::UNMATCHED_ROUTE;
use vitals_core::Registry;

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

fn metrics(registry: &Registry) -> Metrics {
    Metrics::builder().registry(registry).build().unwrap()
}

/// A body of five chunks, 40 ms apart.
fn slow_stream() -> HttpResponse {
    let chunks = futures_util::stream::unfold(0u8, |i| async move {
        if i == 5 {
            return None;
        }
        if i > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(40)).await;
        }
        Some((
            Ok::<_, actix_web::Error>(Bytes::from(vec![b'x'; 100])),
            i + 1,
        ))
    });
    HttpResponse::Ok().streaming(chunks)
}

macro_rules! app {
    ($registry:expr) => {
        test::init_service(
            App::new()
                .wrap(metrics($registry))
                .route("/users/{id}", web::get().to(|| async { "user" }))
                .route("/users/{id}", web::post().to(|| async { "created" }))
                .route(
                    "/error",
                    web::get().to(|| async {
                        Err::<HttpResponse, _>(actix_web::error::ErrorServiceUnavailable("down"))
                    }),
                )
                .route("/stream", web::get().to(|| async { slow_stream() }))
                .route(
                    "/panic",
                    web::get().to(|| async {
                        panic!("handler bug");
                        #[allow(unreachable_code)]
                        ""
                    }),
                )
                .route("/files/{tail:.*}", web::get().to(|| async { "file" }))
                .service(
                    web::scope("/api").service(
                        web::scope("/v1")
                            .route("/orders/{order_id}", web::get().to(|| async { "order" })),
                    ),
                ),
        )
        .await
    };
}

async fn send<S, B>(app: &S, method: Method, uri: &str) -> StatusCode
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let request = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .to_request();
    let response = test::call_service(app, request).await;
    let status = response.status();
    let _ = test::read_body(response).await;
    status
}

#[actix_web::test]
async fn routes_are_patterns_under_scopes_and_methods_are_normalised() {
    let registry = Registry::new();
    let app = app!(&registry);
    assert_eq!(send(&app, Method::GET, "/users/42").await, StatusCode::OK);
    assert_eq!(send(&app, Method::POST, "/users/43").await, StatusCode::OK);
    assert_eq!(
        send(&app, Method::GET, "/api/v1/orders/7").await,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, Method::GET, "/files/a/b/c.txt").await,
        StatusCode::OK
    );
    let propfind = Method::from_bytes(b"PROPFIND").unwrap();
    assert_eq!(
        send(&app, propfind, "/users/45").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, Method::GET, "/error").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(1.0));
    assert_eq!(total(&registry, "POST", "/users/{id}", "200"), Some(1.0));
    assert_eq!(
        total(&registry, "GET", "/api/v1/orders/{order_id}", "200"),
        Some(1.0)
    );
    assert_eq!(
        total(&registry, "GET", "/files/{tail:.*}", "200"),
        Some(1.0)
    );
    assert_eq!(total(&registry, "GET", "/error", "503"), Some(1.0));
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(
        !text.contains("/users/42") && !text.contains("c.txt"),
        "no raw path"
    );
    assert!(text.contains("method=\"_OTHER\""), "{text}");
    assert_eq!(in_flight(&registry, "GET", "/users/{id}"), Some(0.0));
}

#[actix_web::test]
async fn a_flood_of_random_unmatched_paths_adds_a_constant_number_of_series() {
    let registry = Registry::new();
    let app = app!(&registry);
    for i in 0..10_000u32 {
        let path = format!("/scan/{:x}/{}.php", i.wrapping_mul(2_654_435_761), i);
        assert_eq!(send(&app, Method::GET, &path).await, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "404"),
        Some(10_000.0)
    );
    let series = vitals_core::encoding::text::encode(&registry)
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .count();
    assert_eq!(series, 1);
}

#[actix_web::test]
async fn latency_covers_the_whole_streaming_body_and_aborts_are_counted() {
    let registry = Registry::new();
    let app = app!(&registry);
    assert_eq!(send(&app, Method::GET, "/stream").await, StatusCode::OK);
    let labels = [("method", "GET"), ("route", "/stream"), ("status", "200")];
    let sum = registry
        .get_sample_value("http_request_duration_seconds_sum", &labels)
        .unwrap();
    assert!(sum >= 0.16, "the clock ran until the last chunk: {sum}");

    // A client that reads one chunk and goes away.
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/stream").to_request()).await;
    assert_eq!(in_flight(&registry, "GET", "/stream"), Some(1.0));
    let mut body = Box::pin(response.into_body());
    let first = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
    assert_eq!(first.unwrap().unwrap().len(), 100);
    drop(body);
    assert_eq!(total(&registry, "GET", "/stream", "200"), Some(2.0));
    assert_eq!(in_flight(&registry, "GET", "/stream"), Some(0.0));
}

#[actix_web::test]
async fn dropped_futures_and_panics_are_counted_once() {
    let registry = Registry::new();
    let app = test::init_service(App::new().wrap(metrics(&registry)).route(
        "/slow",
        web::get().to(|| async {
            actix_web::rt::time::sleep(Duration::from_secs(60)).await;
            "late"
        }),
    ))
    .await;
    let call = test::call_service(&app, test::TestRequest::get().uri("/slow").to_request());
    let timed_out = actix_web::rt::time::timeout(Duration::from_millis(50), call).await;
    assert!(timed_out.is_err());
    assert_eq!(total(&registry, "GET", "/slow", "499"), Some(1.0));
    assert_eq!(in_flight(&registry, "GET", "/slow"), Some(0.0));

    let panicking = Registry::new();
    let app = app!(&panicking);
    let call = test::call_service(&app, test::TestRequest::get().uri("/panic").to_request());
    let result = std::panic::AssertUnwindSafe(call).catch_unwind().await;
    assert!(result.is_err(), "the panic went through the middleware");
    assert_eq!(total(&panicking, "GET", "/panic", "500"), Some(1.0));
    assert_eq!(in_flight(&panicking, "GET", "/panic"), Some(0.0));
}

#[actix_web::test]
async fn the_endpoint_serves_negotiated_metrics_and_can_be_guarded_or_turned_off() {
    let registry = Registry::new();
    let app = app!(&registry);
    send(&app, Method::GET, "/users/1").await;
    let response = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/metrics")
            .insert_header(("accept", "application/openmetrics-text; version=1.0.0"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        vitals_core::encoding::openmetrics::CONTENT_TYPE
    );
    let body = test::read_body(response).await;
    assert!(body.ends_with(b"# EOF\n"));
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "200"),
        None,
        "not counted"
    );
    let head = test::call_service(
        &app,
        test::TestRequest::default()
            .method(Method::HEAD)
            .uri("/metrics")
            .to_request(),
    )
    .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers().get("content-type").unwrap(),
        vitals_core::encoding::text::CONTENT_TYPE
    );
    assert!(test::read_body(head).await.is_empty());
    let post =
        test::call_service(&app, test::TestRequest::post().uri("/metrics").to_request()).await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers().get("allow").unwrap(), "GET, HEAD");
    assert_eq!(test::read_body(post).await, "use GET\n");

    let guarded = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(
                Metrics::builder()
                    .registry(&guarded)
                    .endpoint(Some("/internal/metrics"))
                    .count_endpoint(true)
                    .endpoint_access(|request| request.headers().contains_key("x-token"))
                    .build()
                    .unwrap(),
            )
            .route("/", web::get().to(|| async { "home" })),
    )
    .await;
    assert_eq!(
        send(&app, Method::GET, "/internal/metrics").await,
        StatusCode::FORBIDDEN
    );
    let allowed = test::TestRequest::get()
        .uri("/internal/metrics")
        .insert_header(("x-token", "yes"))
        .to_request();
    let scrape = test::call_service(&app, allowed).await;
    assert_eq!(scrape.status(), StatusCode::OK);
    let body = test::read_body(scrape).await;
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .contains("# TYPE http_requests_total counter"),
        "the scrape is the registry's exposition"
    );
    assert_eq!(
        send(&app, Method::GET, "/metrics").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        total(&guarded, "GET", UNMATCHED_ROUTE, "403"),
        Some(1.0),
        "counted when asked"
    );
    assert_eq!(total(&guarded, "GET", UNMATCHED_ROUTE, "200"), Some(1.0));
    assert_eq!(in_flight(&guarded, "GET", UNMATCHED_ROUTE), Some(0.0));
}

#[actix_web::test]
async fn the_endpoint_gzips_for_scrapers_that_accept_it_and_varies_on_both_headers() {
    let registry = Registry::new();
    let app = app!(&registry);
    send(&app, Method::GET, "/users/1").await;
    let series = "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 1";
    let cases = [
        (Some("gzip"), true),
        (Some("gzip, deflate, br"), true),
        (Some("*"), true),
        (Some("br;q=1.0, GZIP;Q=0.5"), true),
        (None, false),
        (Some("gzip;q=0"), false),
        (Some("*;q=1, gzip;q=0"), false),
        (Some("identity"), false),
    ];
    for (encoding, gzipped) in cases {
        let mut request = test::TestRequest::get().uri("/metrics");
        if let Some(encoding) = encoding {
            request = request.insert_header(("accept-encoding", encoding));
        }
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers.get("vary").unwrap(), "Accept, Accept-Encoding");
        assert_eq!(
            headers.get("content-encoding").is_some(),
            gzipped,
            "{encoding:?}"
        );
        let body = test::read_body(response).await;
        let text = if gzipped {
            assert_eq!(headers.get("content-encoding").unwrap(), "gzip");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
                .expect("a gzip stream");
            text
        } else {
            String::from_utf8(body.to_vec()).unwrap()
        };
        assert!(text.contains(series), "{encoding:?}: {text}");
    }
}

#[actix_web::test]
async fn a_multi_worker_server_keeps_one_set_of_series_per_process() {
    use std::io::{Read as _, Write as _};

    let registry = Registry::new();
    let factory_registry = registry.clone();
    // Every worker builds its own App and middleware from the factory, as in production.
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .wrap(metrics(&factory_registry))
            .route("/users/{id}", web::get().to(|| async { "user" }))
    })
    .workers(2)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let statuses = actix_web::rt::task::spawn_blocking(move || {
        (0..40)
            .map(|i| {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                write!(
                    stream,
                    "GET /users/{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer.starts_with("HTTP/1.1 200")
            })
            .filter(|ok| *ok)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(statuses, 40);
    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(40.0));
    let families = vitals_core::encoding::text::encode(&registry)
        .lines()
        .filter(|l| l.starts_with("# TYPE http_requests_total"))
        .count();
    assert_eq!(families, 1, "one family however many workers");
    handle.stop(true).await;
}

#[actix_web::test]
async fn static_routes_are_remembered_and_stay_exact_next_to_dynamic_ones() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(metrics(&registry))
            .route("/health", web::get().to(|| async { "ok" }))
            .service(
                web::scope("/users")
                    // A static route that a dynamic one would also match: order decides.
                    .route("/me", web::get().to(|| async { "me" }))
                    .route("/{id}", web::get().to(|| async { "a user" })),
            ),
    )
    .await;
    for _ in 0..3 {
        for uri in [
            "/health",
            "/users/me",
            "/users/7",
            "/users/me/",
            "/health/x",
        ] {
            send(&app, Method::GET, uri).await;
        }
    }
    assert_eq!(total(&registry, "GET", "/health", "200"), Some(3.0));
    assert_eq!(total(&registry, "GET", "/users/me", "200"), Some(3.0));
    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(3.0));
    // Not routes: the unmatched sentinel every time, never the raw path.
    assert_eq!(total(&registry, "GET", UNMATCHED_ROUTE, "404"), Some(6.0));
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(!text.contains("/health/x"), "{text}");
    assert_eq!(in_flight(&registry, "GET", "/users/me"), Some(0.0));
}

#[actix_web::test]
async fn remembered_patterns_stay_exact_across_many_paths_and_repeats() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(metrics(&registry))
            .route("/users/{id}", web::get().to(|| async { "a user" }))
            .route("/items/{id}", web::get().to(|| async { "an item" })),
    )
    .await;
    // More distinct paths than the table has slots, each seen three times (so that many are
    // admitted and many displace each other), interleaved with unmatched ones.
    for _ in 0..3 {
        for n in 0..700 {
            send(&app, Method::GET, &format!("/users/{n}")).await;
            send(&app, Method::GET, &format!("/items/{n}")).await;
            send(&app, Method::GET, &format!("/nope/{n}")).await;
        }
    }
    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(2100.0));
    assert_eq!(total(&registry, "GET", "/items/{id}", "200"), Some(2100.0));
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "404"),
        Some(2100.0)
    );
    assert_eq!(in_flight(&registry, "GET", "/items/{id}"), Some(0.0));
}

#[actix_web::test]
async fn body_sizes_count_the_real_bytes_of_responses_and_requests() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(
                Metrics::builder()
                    .registry(&registry)
                    .body_sizes(true)
                    .build()
                    .unwrap(),
            )
            .route("/echo", web::post().to(|body: Bytes| async move { body }))
            // Does not read the request payload.
            .route("/ignore", web::post().to(|| async { "" })),
    )
    .await;
    let declared = test::TestRequest::post()
        .uri("/echo")
        .insert_header(("content-length", "5"))
        .set_payload("hello")
        .to_request();
    let body = test::read_body(test::call_service(&app, declared).await).await;
    assert_eq!(body, "hello");

    // A chunked upload: no Content-Length, a payload stream.
    let chunked = test::TestRequest::post().uri("/echo").to_request();
    let stream: actix_http::BoxedPayloadStream = Box::pin(futures_util::stream::iter([Ok::<
        _,
        actix_web::error::PayloadError,
    >(
        Bytes::from_static(b"abc"),
    )]));
    let (chunked, _) = chunked.replace_payload(actix_web::dev::Payload::from(stream));
    let body = test::read_body(test::call_service(&app, chunked).await).await;
    assert_eq!(body, "abc");

    let unread = test::TestRequest::post()
        .uri("/ignore")
        .insert_header(("content-length", "7"))
        .set_payload("ignored")
        .to_request();
    test::read_body(test::call_service(&app, unread).await).await;
    // A declaration near u64::MAX on a payload the handler never read: actix drains what
    // the handler left, so the bytes received count, not the declaration.
    let hostile = test::TestRequest::post()
        .uri("/ignore")
        .insert_header(("content-length", "18446744073709551613"))
        .set_payload("unread")
        .to_request();
    test::read_body(test::call_service(&app, hostile).await).await;

    let size = |name: &str, route: &str| {
        let labels = [("method", "POST"), ("route", route)];
        (
            registry.get_sample_value(&format!("{name}_sum"), &labels),
            registry.get_sample_value(&format!("{name}_count"), &labels),
        )
    };
    assert_eq!(
        size("http_request_size_bytes", "/echo"),
        (Some(8.0), Some(2.0)),
        "the chunked upload is measured by the bytes read"
    );
    assert_eq!(
        size("http_request_size_bytes", "/ignore"),
        (Some(13.0), Some(2.0)),
        "a payload the handler did not read counts the bytes actix drained"
    );
    assert_eq!(
        size("http_response_size_bytes", "/echo"),
        (Some(8.0), Some(2.0))
    );
}

/// A middleware that fails `/users/refused` before routing, so that no response comes back
/// to read actix's answer from.
fn refuse_one_path<S, B>(
    request: actix_web::dev::ServiceRequest,
    service: &S,
) -> futures_util::future::Either<
    std::future::Ready<Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>,
    S::Future,
>
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    use futures_util::future::Either;
    if request.path() == "/users/refused" {
        Either::Left(std::future::ready(Err(actix_web::error::ErrorForbidden(
            "refused",
        ))))
    } else {
        Either::Right(service.call(request))
    }
}

#[actix_web::test]
async fn paths_rewritten_inside_the_middleware_or_routed_by_a_guard_are_recorded_where_actix_routed_them(
) {
    use actix_web::{guard, middleware::NormalizePath};

    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            // Wrapped first, so it runs inside ours: we see each path before it is normalised.
            .wrap(NormalizePath::trim())
            .wrap(metrics(&registry))
            .route("/users/{id}", web::get().to(|| async { "user" }))
            // The first scope takes `/v/...` only with the header; `/v/items` without it goes
            // to the second, though a walk of the map by path alone answers `/v/{thing}`.
            .service(
                web::scope("/v")
                    .guard(guard::Header("x-version", "2"))
                    .route("/{thing}", web::get().to(|| async { "v2" })),
            )
            .service(web::scope("/v").route("/items", web::get().to(|| async { "items" }))),
    )
    .await;
    // Each path three times: a wrong answer must not be remembered and repeated.
    for _ in 0..3 {
        for path in ["/users/7/", "//users/8", "/v/items"] {
            assert_eq!(
                send(&app, Method::GET, path).await,
                StatusCode::OK,
                "{path}"
            );
        }
    }
    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(6.0));
    assert_eq!(total(&registry, "GET", "/v/items", "200"), Some(3.0));
    assert_eq!(total(&registry, "GET", "/v/{thing}", "200"), None);
    assert_eq!(total(&registry, "GET", UNMATCHED_ROUTE, "200"), None);
    for route in ["/users/{id}", "/v/items", "/v/{thing}", UNMATCHED_ROUTE] {
        assert_eq!(
            in_flight(&registry, "GET", route).unwrap_or(0.0),
            0.0,
            "{route}"
        );
    }
}

#[actix_web::test]
async fn guessed_routes_are_checked_after_routing_and_a_wrong_guess_is_not_repeated() {
    let registry = Registry::new();
    // What the admin handler saw in flight: under the route learned for `/users/1`
    // (`/users/{id}`, the guess) and under its own.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (r, s) = (registry.clone(), seen.clone());
    let admin = move || {
        let sample = (
            in_flight(&r, "GET", "/users/{id}"),
            in_flight(&r, "GET", "/users/admin"),
        );
        s.borrow_mut().push(sample);
        async { "admin" }
    };
    let app = test::init_service(
        App::new()
            .wrap(metrics(&registry))
            // Before the dynamic route, so actix picks it for its path; a structural guess
            // from `/users/{id}` would not.
            .route("/users/admin", web::get().to(admin))
            .route("/users/{id}", web::get().to(|| async { "a user" })),
    )
    .await;

    assert_eq!(send(&app, Method::GET, "/users/1").await, StatusCode::OK);
    // Never seen: guessed as `/users/{id}`, which is wrong; moved to actix's answer.
    assert_eq!(
        send(&app, Method::GET, "/users/admin").await,
        StatusCode::OK
    );
    // The guess is not trusted again: the next paths take actix's walk.
    assert_eq!(
        send(&app, Method::GET, "/users/admin").await,
        StatusCode::OK
    );
    assert_eq!(send(&app, Method::GET, "/users/2").await, StatusCode::OK);
    assert_eq!(
        *seen.borrow(),
        vec![(Some(1.0), None), (Some(0.0), Some(1.0))],
        "in flight during the first admin request: under the guess; during the second: right"
    );
    assert_eq!(total(&registry, "GET", "/users/admin", "200"), Some(2.0));
    assert_eq!(total(&registry, "GET", "/users/{id}", "200"), Some(2.0));
    assert_eq!(in_flight(&registry, "GET", "/users/{id}"), Some(0.0));
    assert_eq!(in_flight(&registry, "GET", "/users/admin"), Some(0.0));

    // A fresh app, whose guess is trusted, for the request whose response never comes: the
    // guess is checked by walking the resource map after all.
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            // Inside the metrics middleware.
            .wrap_fn(refuse_one_path)
            .wrap(metrics(&registry))
            .route("/users/refused", web::get().to(|| async { "never" }))
            .route("/users/{id}", web::get().to(|| async { "a user" })),
    )
    .await;
    assert_eq!(send(&app, Method::GET, "/users/1").await, StatusCode::OK);
    let refused = test::TestRequest::get().uri("/users/refused").to_request();
    let error = test::try_call_service(&app, refused).await.unwrap_err();
    assert_eq!(
        error.as_response_error().status_code(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(total(&registry, "GET", "/users/refused", "403"), Some(1.0));
    assert_eq!(total(&registry, "GET", "/users/{id}", "403"), None);
    assert_eq!(in_flight(&registry, "GET", "/users/{id}"), Some(0.0));
}

#[actix_web::test]
async fn every_request_is_recorded_under_the_pattern_actix_routed_it_to() {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    // Each handler notes the pattern actix itself gives after routing; the recorded route of
    // every request must be that, whether the middleware remembered, guessed or walked.
    let seen: Rc<RefCell<HashMap<String, u32>>> = Rc::default();
    let note = |seen: Rc<RefCell<HashMap<String, u32>>>| {
        move |request: actix_web::HttpRequest| {
            let pattern = request
                .match_pattern()
                .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
            *seen.borrow_mut().entry(pattern).or_default() += 1;
            async { HttpResponse::Ok().finish() }
        }
    };
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(metrics(&registry))
            .route("/users/{id}", web::get().to(note(seen.clone())))
            .route(
                "/users/{id}/posts/{post}",
                web::get().to(note(seen.clone())),
            )
            .route("/files/{tail:.*}", web::get().to(note(seen.clone())))
            // A regex segment, and a static route after a dynamic one it overlaps.
            .route("/items/{id:\\d+}", web::get().to(note(seen.clone())))
            .route("/items/{name}", web::get().to(note(seen.clone())))
            .route("/items/new", web::get().to(note(seen.clone())))
            .service(web::scope("/api").route("/v1/{thing}", web::get().to(note(seen.clone())))),
    )
    .await;
    let long = format!("/users/{}", "a".repeat(5000));
    let mut paths = Vec::new();
    for i in 0..200 {
        paths.extend([
            format!("/users/{i}"),
            format!("/users/{i}/posts/{}", i * 7),
            format!("/files/{i}/{i}.txt"),
            format!("/files/{i}"),
            format!("/items/{i}"),
            format!("/items/x{i}"),
            "/items/new".to_owned(),
            format!("/api/v1/{i}"),
            format!("/users/%2F{i}"),
            // Percent-encoded letters: actix routes on the decoded path.
            format!("/us%65rs/{i}"),
            "/items/n%65w".to_owned(),
            format!("/%61pi/v1/{i}"),
            format!("/users/%{i}"),
            // Broken or hostile encodings.
            "/%zz".to_owned(),
            "/users/%C0%AF".to_owned(),
            format!("/users/%00{i}"),
            "/%2e%2e/%2e%2e/etc/passwd".to_owned(),
            "*".to_owned(),
            format!("/users/{i}/"),
            format!("//users/{i}"),
            "/users/".to_owned(),
            "/files/".to_owned(),
        ]);
    }
    paths.push(long);
    let mut unmatched = 0;
    for path in paths.iter().chain(&paths) {
        let status = send(&app, Method::GET, path).await;
        if status == StatusCode::NOT_FOUND {
            unmatched += 1;
        }
    }
    let seen = seen.borrow();
    assert!(seen.len() >= 6, "the paths reached the routes: {seen:?}");
    for (pattern, count) in seen.iter() {
        assert_eq!(
            total(&registry, "GET", pattern, "200"),
            Some(f64::from(*count)),
            "{pattern}"
        );
    }
    assert_eq!(
        total(&registry, "GET", UNMATCHED_ROUTE, "404").unwrap_or(0.0),
        f64::from(unmatched)
    );
    let text = vitals_core::encoding::text::encode(&registry);
    assert!(
        !text.contains("aaaa") && !text.contains("%2F"),
        "no raw path became a label"
    );
}

#[actix_web::test]
async fn wrapped_around_one_scope_it_records_the_full_patterns_of_that_scope() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .service(
                web::scope("/api")
                    .wrap(metrics(&registry))
                    .route("/users/{id}", web::get().to(|| async { "user" }))
                    .route("/health", web::get().to(|| async { "ok" })),
            )
            .route("/outside", web::get().to(|| async { "not recorded" })),
    )
    .await;
    for _ in 0..3 {
        for i in 0..3 {
            send(&app, Method::GET, &format!("/api/users/{i}")).await;
        }
        send(&app, Method::GET, "/api/health").await;
        send(&app, Method::GET, "/api/nope").await;
        send(&app, Method::GET, "/outside").await;
    }
    assert_eq!(total(&registry, "GET", "/api/users/{id}", "200"), Some(9.0));
    assert_eq!(total(&registry, "GET", "/api/health", "200"), Some(3.0));
    assert_eq!(total(&registry, "GET", UNMATCHED_ROUTE, "404"), Some(3.0));
    assert_eq!(total(&registry, "GET", "/outside", "200"), None);
}
