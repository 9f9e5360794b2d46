//! Per-request cost of the actix-web middleware, in process, next to the bare app and to
//! actix-web-prom, in one run: `cargo bench -p vitals-benches --bench actix`.
//!
//! Each iteration calls the app with `GET /users/42` through `actix_web::test::call_service`
//! and reads the body to the end; the added cost of a middleware is its time minus the bare
//! app's.

use std::hint::black_box;
use std::time::Duration;

use actix_web::{test, web, App};
use criterion::{criterion_group, criterion_main, Criterion};
use metrics_core::Registry;

fn per_request(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let mut g = c.benchmark_group("actix_request");
    macro_rules! bench {
        ($name:expr, $app:expr) => {{
            let app = system.block_on(test::init_service(
                $app.route("/users/{id}", web::get().to(|| async { "a user" })),
            ));
            g.bench_function($name, |b| {
                b.iter(|| {
                    system.block_on(async {
                        let request = test::TestRequest::get().uri("/users/42").to_request();
                        let response = test::call_service(&app, request).await;
                        black_box(test::read_body(response).await)
                    })
                })
            });
        }};
    }
    bench!("bare_app", App::new());
    let registry = Registry::new();
    bench!(
        "vitals",
        App::new().wrap(
            metrics_actix::Metrics::builder()
                .registry(&registry)
                .build()
                .unwrap()
        )
    );
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("api")
        .endpoint("/metrics")
        .build()
        .unwrap();
    bench!("actix_web_prom", App::new().wrap(prom.clone()));
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
        "the middleware recorded what it measured"
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
