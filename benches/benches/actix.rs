//! Per-request cost of the actix-web middleware, in process, next to the bare app and to
//! actix-web-prom, in one run: `cargo bench -p vitals-benches --bench actix`.
//!
//! Each iteration calls the app through `actix_web::test::call_service` and reads the body to
//! the end; the added cost of a middleware is its time minus the bare app's. Three workloads,
//! because vitals' middleware remembers recent paths' route patterns (per worker, bounded):
//! one path again and again (`GET /users/42`, always remembered), a static route
//! (`GET /health`), and ids that change every request (`GET /users/<0..100000>`, almost never
//! remembered: the worst case for vitals).

use std::hint::black_box;
use std::time::Duration;

use actix_web::{test, web, App};
use criterion::{criterion_group, criterion_main, Criterion};
use vitals_core::Registry;

fn per_request(c: &mut Criterion) {
    per_path(c, "actix_request", |_| "/users/42".to_owned());
    per_path(c, "actix_static_route", |_| "/health".to_owned());
    // A stride that visits 100,000 ids before repeating one.
    per_path(c, "actix_varying_ids", |i| {
        format!("/users/{}", i * 7919 % 100_000)
    });
}

fn per_path(c: &mut Criterion, group: &str, path: impl Fn(u64) -> String) {
    let mut i = 0_u64;
    let mut vitals_requests = 0_u64;
    let system = actix_web::rt::System::new();
    let mut g = c.benchmark_group(group);
    macro_rules! bench {
        ($name:expr, $app:expr) => {{
            let app = system.block_on(test::init_service(
                $app.route("/users/{id}", web::get().to(|| async { "a user" }))
                    .route("/health", web::get().to(|| async { "ok" })),
            ));
            g.bench_function($name, |b| {
                b.iter(|| {
                    i += 1;
                    vitals_requests += u64::from($name == "vitals");
                    let uri = path(i);
                    system.block_on(async {
                        let request = test::TestRequest::get().uri(&uri).to_request();
                        let response = test::call_service(&app, request).await;
                        black_box(test::read_body(response).await)
                    })
                })
            });
        }};
    }
    bench!("bare_app", App::new());
    // Wraps the future and the body, records nothing: the floor under any middleware that
    // times requests until the body ends.
    bench!(
        "noop_middleware",
        App::new().wrap(vitals_benches::noop::NoopMiddleware)
    );
    let registry = Registry::new();
    bench!(
        "vitals",
        App::new().wrap(
            vitals_actix::Metrics::builder()
                .registry(&registry)
                .build()
                .unwrap()
        )
    );
    // actix-web-prom registers into a registry of its own: one per group.
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("api")
        .registry(prometheus::Registry::new())
        .endpoint("/metrics")
        .build()
        .unwrap();
    bench!("actix_web_prom", App::new().wrap(prom.clone()));
    g.finish();
    // Only when the vitals benchmark ran (a filter may have left it out).
    assert!(
        vitals_requests == 0
            || registry
                .get_sample_value(
                    "http_requests_total",
                    &[
                        ("method", "GET"),
                        (
                            "route",
                            if path(0) == "/health" {
                                "/health"
                            } else {
                                "/users/{id}"
                            }
                        ),
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
