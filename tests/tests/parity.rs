//! Parity: the same request script sent to an axum app (vitals-tower) and an actix-web app
//! (vitals-actix) with the same routes gives the same series names, label sets and counts.

use std::collections::BTreeMap;
use std::convert::Infallible;

use actix_web::{test as actix_test, web, App, HttpResponse};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use vitals_core::encoding::text;
use vitals_core::Registry;

/// Method, path: matched, unmatched, errors, custom methods, streaming.
const SCRIPT: &[(&str, &str)] = &[
    ("GET", "/users/1"),
    ("GET", "/users/2"),
    ("POST", "/users/3"),
    ("GET", "/orders/7/items/8"),
    ("GET", "/error"),
    ("GET", "/error"),
    ("GET", "/stream"),
    ("GET", "/nope"),
    ("GET", "/wp-admin/setup.php"),
    ("PROPFIND", "/nope"),
    ("DELETE", "/also/not/here"),
];

fn chunks() -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::iter((0..3).map(|i| Ok(Bytes::from(format!("chunk {i}\n")))))
}

/// The samples of the HTTP families, by series, from a text exposition.
fn http_series(registry: &Registry) -> BTreeMap<String, String> {
    text::encode(registry)
        .lines()
        // Durations differ between frameworks; sizes do not, sums included.
        .filter(|l| l.starts_with("http_") && !l.starts_with("http_request_duration_seconds_sum{"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.to_owned()))
        .collect()
}

#[actix_web::test]
async fn axum_and_actix_expose_the_same_series_for_the_same_traffic() {
    let (tower_registry, actix_registry) = (Registry::new(), Registry::new());

    let axum_app = Router::new()
        .route(
            "/users/{id}",
            get(|| async { "user" }).post(|| async { "created" }),
        )
        .route(
            "/orders/{order_id}/items/{item_id}",
            get(|| async { "item" }),
        )
        .route(
            "/error",
            get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/stream", get(|| async { Body::from_stream(chunks()) }))
        .layer(
            vitals_tower::MetricsLayer::builder()
                .registry(&tower_registry)
                .body_sizes(true)
                .build()
                .unwrap(),
        );
    let actix_app = actix_test::init_service(
        App::new()
            .wrap(
                vitals_actix::Metrics::builder()
                    .registry(&actix_registry)
                    .body_sizes(true)
                    .build()
                    .unwrap(),
            )
            .route("/users/{id}", web::get().to(|| async { "user" }))
            .route("/users/{id}", web::post().to(|| async { "created" }))
            .route(
                "/orders/{order_id}/items/{item_id}",
                web::get().to(|| async { "item" }),
            )
            .route(
                "/error",
                web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
            )
            .route(
                "/stream",
                web::get().to(|| async { HttpResponse::Ok().streaming(chunks()) }),
            ),
    )
    .await;

    for &(method, path) in SCRIPT {
        // POSTs carry a body, so that request sizes are compared too.
        let body = if method == "POST" { "hello" } else { "" };
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-length", body.len())
            .body(Body::from(body))
            .unwrap();
        let response = axum_app.clone().oneshot(request).await.unwrap();
        let axum_status = response.status().as_u16();
        response.into_body().collect().await.unwrap();

        let request = actix_test::TestRequest::default()
            .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .insert_header(("content-length", body.len()))
            .set_payload(body)
            .to_request();
        let response = actix_test::call_service(&actix_app, request).await;
        let actix_status = response.status().as_u16();
        let _ = actix_test::read_body(response).await;
        assert_eq!(
            axum_status, actix_status,
            "{method} {path}: the frameworks agree"
        );
    }

    let (tower_series, actix_series) = (http_series(&tower_registry), http_series(&actix_registry));
    assert!(
        tower_series.len() > 40,
        "counters, buckets, counts and gauges: {}",
        tower_series.len()
    );
    assert_eq!(
        tower_series.keys().collect::<Vec<_>>(),
        actix_series.keys().collect::<Vec<_>>(),
        "the same series names and label sets"
    );
    for (series, value) in &tower_series {
        if series.contains("_bucket{") {
            // Latencies differ between frameworks; the count of each series does not.
            continue;
        }
        assert_eq!(Some(value), actix_series.get(series), "{series}");
    }
    assert_eq!(
        tower_series
            .get("http_requests_total{method=\"_OTHER\",route=\"__unmatched__\",status=\"404\"}"),
        Some(&"1".to_owned())
    );
    assert_eq!(
        tower_series.get("http_request_size_bytes_sum{method=\"POST\",route=\"/users/{id}\"}"),
        Some(&"5.0".to_owned())
    );
}
