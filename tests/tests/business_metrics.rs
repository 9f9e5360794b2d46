//! One registry story: a metric the application registers appears on the same `/metrics` as
//! the HTTP metrics, both for the quick start (the process-wide registry, which
//! `MetricsLayer::new()` and `Metrics::new()` serve) and for the examples (their own
//! registry, given to the layer).
//!
//! This test binary is the only user of `Registry::global()` among the tests, so that the
//! figures it reads are its own.

use std::sync::LazyLock;

use actix_web::test as actix_test;
use axum::body::Body;
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use vitals_core::{Counter, Registry};

async fn axum_call(app: &Router, method: &str, uri: &str) -> (u16, String) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// As the README's quick start shows it.
static SIGNUPS: LazyLock<Counter> = LazyLock::new(|| {
    Registry::global()
        .counter("signups", "Accounts created.")
        .register()
        .expect("signups is registered once, as a counter")
});

#[tokio::test]
async fn a_metric_on_the_global_registry_appears_on_the_quick_start_layers_metrics() {
    let app = Router::new()
        .route(
            "/signup",
            post(|| async {
                SIGNUPS.inc();
                "welcome"
            }),
        )
        .layer(vitals_tower::MetricsLayer::new());
    for _ in 0..3 {
        assert_eq!(axum_call(&app, "POST", "/signup").await.0, 200);
    }
    let (status, metrics) = axum_call(&app, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nsignups_total 3\n"), "{metrics}");
    assert!(
        metrics.contains("http_requests_total{method=\"POST\",route=\"/signup\",status=\"200\"} 3"),
        "{metrics}"
    );
    // The process-wide registry has the process collector from the start, as Python's and
    // Go's default registries do.
    if cfg!(target_os = "linux") {
        assert!(
            metrics.contains("\nprocess_resident_memory_bytes "),
            "{metrics}"
        );
    }

    // actix-web's quick start serves the same process-wide registry.
    let actix = actix_test::init_service(
        actix_web::App::new()
            .wrap(vitals_actix::Metrics::new())
            .route(
                "/signup",
                actix_web::web::post().to(|| async {
                    SIGNUPS.inc();
                    "welcome"
                }),
            ),
    )
    .await;
    let _ = actix_test::call_service(
        &actix,
        actix_test::TestRequest::post().uri("/signup").to_request(),
    )
    .await;
    let body = actix_test::call_and_read_body(
        &actix,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    let metrics = String::from_utf8(body.to_vec()).unwrap();
    assert!(metrics.contains("\nsignups_total 4\n"), "{metrics}");
}

#[tokio::test]
async fn the_axum_example_counts_orders_on_its_metrics_endpoint() {
    let app = axum_app::app().unwrap();
    for _ in 0..2 {
        assert_eq!(axum_call(&app, "POST", "/orders").await.0, 201);
    }
    let (_, metrics) = axum_call(&app, "GET", "/metrics").await;
    assert!(metrics.contains("\norders_placed_total 2\n"), "{metrics}");
    assert!(
        metrics.contains("http_requests_total{method=\"POST\",route=\"/orders\",status=\"201\"} 2"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn the_actix_example_counts_orders_on_its_metrics_endpoint() {
    let app = actix_test::init_service(actix_app::app().unwrap()).await;
    for _ in 0..2 {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::post().uri("/orders").to_request(),
        )
        .await;
        assert_eq!(response.status().as_u16(), 201);
    }
    let body = actix_test::call_and_read_body(
        &app,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    let metrics = String::from_utf8(body.to_vec()).unwrap();
    assert!(metrics.contains("\norders_placed_total 2\n"), "{metrics}");
    assert!(
        metrics.contains("http_requests_total{method=\"POST\",route=\"/orders\",status=\"201\"} 2"),
        "{metrics}"
    );
}
