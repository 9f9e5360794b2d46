//! Per-request cost of the HTTP middleware, in process, next to the bare router and to
//! axum-prometheus, in one run: `cargo bench -p vitals-benches --bench http`.
//!
//! Each iteration sends `GET /users/42` through `ServiceExt::oneshot` and reads the body to
//! the end. The driver (a current-thread runtime's `block_on`) costs the same for every
//! variant, so the added cost of a middleware is its time minus the bare router's.

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use vitals_core::Registry;
use vitals_tower::MetricsLayer;

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route("/health", get(|| async { "ok" }))
}

fn per_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let registry = Registry::new();
    let ours = router().layer(MetricsLayer::builder().registry(&registry).build().unwrap());
    // axum-prometheus installs a process-wide recorder (build it once) and spawns its own
    // upkeep task, which needs the runtime's context.
    let (layer, _handle) = {
        let _context = runtime.enter();
        axum_prometheus::PrometheusMetricLayer::pair()
    };
    let theirs = router().layer(layer);

    let mut g = c.benchmark_group("axum_request");
    for (name, app) in [
        ("bare_router", router()),
        (
            "noop_layer",
            router().layer(vitals_benches::noop::NoopLayer),
        ),
        ("vitals", ours),
        ("axum_prometheus", theirs),
    ] {
        // As `axum::serve` runs a router: every handler turned into its route once, layers
        // included (a router used as it is does that for every request).
        let app = app.with_state(());
        g.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let request = Request::get("/users/42").body(Body::empty()).unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    black_box(response.into_body().collect().await.unwrap().to_bytes())
                })
            })
        });
    }
    g.finish();
    assert!(
        registry
            .get_sample_value(
                "http_requests_total",
                &[
                    ("method", "GET"),
                    ("route", "/users/{id}"),
                    ("status", "200")
                ]
            )
            .is_some_and(|n| n > 0.0),
        "the layer recorded what it measured"
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = per_request
}
criterion_main!(benches);
