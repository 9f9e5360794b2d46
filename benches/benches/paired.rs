//! Added cost per request of each middleware, in process, measured in paired rounds:
//! `cargo bench -p vitals-benches --bench paired [-- ROUNDS]`.
//!
//! The criterion benchmarks (`http`, `actix`) time each variant for seconds, one after the
//! other. On a shared machine whose speed drifts over seconds, the difference between two
//! such figures (a middleware's time minus the bare app's, a fraction of a microsecond) can
//! move by more than its own size. Here every round times a batch of requests through each
//! variant in turn, the order rotating from round to round, so that each round's added cost
//! is measured within a few milliseconds of the bare app's; the figures are the medians over
//! the rounds, with the middle half of the per-round values beside them.
//!
//! Workloads: an axum router (`GET /users/42` through `ServiceExt::oneshot`), an actix-web
//! app (`actix_web::test::call_service`) on a repeated path with a parameter, a static
//! route, and a new id every request, and the axum router with and without a `traceparent`
//! header (what exemplars cost); each body is read to the end. `-- --workload N` times only
//! workload `N` (numbered from 0, in that order). The timed run
//! ends with what a clock read and an `Arc` taken and dropped cost in the same rounds: steps
//! that every recorded request takes, whatever the middleware.
//!
//! Instructions instead of time: `paired --count WORKLOAD VARIANT REQUESTS` runs one variant
//! of one workload (both numbered from 0, in the order above) for that many requests after a
//! warm-up, inside a function of its own (`measured`), so that
//! `valgrind --tool=callgrind --toggle-collect='*paired::measured*'` counts exactly those
//! requests. `benches/added-instructions.sh` does this for every variant and workload.

use std::hint::black_box;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web, App};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use vitals_core::Registry;

/// Requests per variant per round: a few milliseconds.
const BATCH: u64 = 4_000;

/// Runs one batch of requests through a variant, starting at request number `first`.
type Batch = Box<dyn FnMut(u64)>;

/// One step of [`fixed_costs`].
type Step = Box<dyn Fn()>;

/// What a run does.
enum Mode {
    /// Times every variant of every workload, in paired rounds.
    Timed { rounds: usize },
    /// Runs one variant of one workload for `requests` requests, to count instructions.
    Counted {
        workload: usize,
        variant: usize,
        requests: u64,
    },
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = match args.iter().position(|a| a == "--count") {
        Some(at) => {
            let number = |i: usize| -> u64 {
                args.get(at + i)
                    .and_then(|a| a.parse().ok())
                    .expect("usage: paired --count WORKLOAD VARIANT REQUESTS")
            };
            Mode::Counted {
                workload: usize::try_from(number(1)).unwrap(),
                variant: usize::try_from(number(2)).unwrap(),
                requests: number(3),
            }
        }
        None => Mode::Timed {
            rounds: args
                .iter()
                .enumerate()
                .filter(|&(i, _)| i == 0 || args[i - 1] != "--workload")
                .find_map(|(_, a)| a.parse().ok())
                .unwrap_or(150),
        },
    };
    if let Mode::Timed { rounds } = mode {
        println!("{rounds} rounds of {BATCH} requests per variant; added cost over the bare app, median (middle half)\n");
    }
    // `--workload N` times only that workload.
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--workload")
        .and_then(|at| args.get(at + 1)?.parse().ok());
    let run = |workload: usize| match mode {
        Mode::Counted { workload: w, .. } => w == workload,
        Mode::Timed { .. } => only.is_none_or(|w| w == workload),
    };
    if run(0) {
        axum_workload(&mode);
    }
    if run(1) {
        actix_workload(&mode, "actix, repeated path", |_| "/users/42".to_owned());
    }
    if run(2) {
        actix_workload(&mode, "actix, static route", |_| "/health".to_owned());
    }
    if run(3) {
        // A stride that visits 100,000 ids before repeating one.
        actix_workload(&mode, "actix, a new id every request", |i| {
            format!("/users/{}", i * 7919 % 100_000)
        });
    }
    if run(4) {
        axum_traceparent_workload(&mode);
    }
    if let Mode::Timed { rounds } = mode {
        fixed_costs(rounds);
    }
}

/// What the steps that every recorded request takes, whatever the middleware, cost in this
/// run: a read of the clock vitals times requests with (twice per request), of the one the
/// peers use (twice, too), and the atomic pair of an `Arc` taken and dropped (vitals: once
/// per request). Part of each middleware's added time that no change of ours can remove.
fn fixed_costs(rounds: usize) {
    const STEPS: u64 = 100_000;
    let clock = quanta::Clock::new();
    let shared = std::sync::Arc::new(0u64);
    let steps: Vec<(&str, Step)> = vec![
        (
            "an empty step",
            Box::new(|| {
                black_box(0u64);
            }),
        ),
        (
            "a read of vitals' clock (quanta)",
            Box::new(move || {
                black_box(clock.raw());
            }),
        ),
        (
            "Instant::now()",
            Box::new(|| {
                black_box(Instant::now());
            }),
        ),
        (
            "an Arc taken and dropped",
            Box::new(move || {
                drop(black_box(std::sync::Arc::clone(&shared)));
            }),
        ),
    ];
    let times = rotated_rounds(rounds, steps.len(), STEPS, |s| {
        for _ in 0..STEPS {
            (steps[s].1)();
        }
    });
    println!("Steps every request takes, in the same run (ns each, median over the rounds):");
    for (k, (name, _)) in steps.iter().enumerate() {
        let (low, mid, high) = quartiles(&times[k]);
        println!("  {name:<34} {mid:>5.1} ns ({low:.1} to {high:.1})");
    }
}

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route("/health", get(|| async { "ok" }))
}

fn axum_workload(mode: &Mode) {
    let runtime = std::rc::Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
    );
    let registry = Registry::new();
    let ours = router().layer(
        vitals_tower::MetricsLayer::builder()
            .registry(&registry)
            .build()
            .unwrap(),
    );
    // axum-prometheus installs a process-wide recorder and spawns an upkeep task, which
    // needs the runtime's context.
    let (layer, _handle) = {
        let _context = runtime.enter();
        axum_prometheus::PrometheusMetricLayer::pair()
    };
    let batch = |app: Router| -> Batch {
        // As `axum::serve` runs a router: `with_state` turns every handler into its route
        // once, layers included. (A router used as it is does that, and calls each layer's
        // `Layer::layer`, for every request: a cost no served app pays.)
        let app = app.with_state(());
        let runtime = std::rc::Rc::clone(&runtime);
        Box::new(move |_| {
            runtime.block_on(async {
                for _ in 0..BATCH {
                    let request = http::Request::get("/users/42").body(Body::empty()).unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    black_box(response.into_body().collect().await.unwrap().to_bytes());
                }
            });
        })
    };
    let variants = vec![
        ("bare", batch(router())),
        (
            "no-op layer",
            batch(router().layer(vitals_benches::noop::NoopLayer)),
        ),
        ("vitals", batch(ours)),
        ("axum-prometheus", batch(router().layer(layer))),
    ];
    report("axum, GET /users/42", mode, variants);
    if matches!(mode, Mode::Counted { variant, .. } if *variant != 2) {
        return;
    }
    assert!(
        recorded(&registry, "/users/{id}"),
        "the layer recorded what it measured"
    );
}

/// The axum workload with and without a W3C `traceparent` on every request: what the
/// exemplars cost (the header's lookup, and for the requests that keep their trace, at most
/// one per millisecond on the route, its parse, allocation and two exemplars). Requests without it carry another header of the same length, so that
/// building the requests costs the same in every variant.
fn axum_traceparent_workload(mode: &Mode) {
    let runtime = std::rc::Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
    );
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let batch = |name: &'static str, layer: bool| -> Batch {
        let registry = Registry::new();
        let mut app = router();
        if layer {
            app = app.layer(
                vitals_tower::MetricsLayer::builder()
                    .registry(&registry)
                    .build()
                    .unwrap(),
            );
        }
        let app = app.with_state(());
        let runtime = std::rc::Rc::clone(&runtime);
        Box::new(move |_| {
            runtime.block_on(async {
                for _ in 0..BATCH {
                    let request = http::Request::get("/users/42")
                        .header(name, TRACEPARENT)
                        .body(Body::empty())
                        .unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    black_box(response.into_body().collect().await.unwrap().to_bytes());
                }
            });
        })
    };
    let variants = vec![
        ("bare", batch("x-request-id", false)),
        ("vitals", batch("x-request-id", true)),
        ("vitals+traceparent", batch("traceparent", true)),
    ];
    report(
        "axum, GET /users/42, with and without traceparent",
        mode,
        variants,
    );
}

fn actix_workload(mode: &Mode, name: &str, path: fn(u64) -> String) {
    let system = std::rc::Rc::new(actix_web::rt::System::new());
    let app = |app: App<_>| {
        app.route("/users/{id}", web::get().to(|| async { "a user" }))
            .route("/health", web::get().to(|| async { "ok" }))
    };
    let registry = Registry::new();
    let ours = vitals_actix::Metrics::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let theirs = actix_web_prom::PrometheusMetricsBuilder::new("api")
        .registry(prometheus::Registry::new())
        .endpoint("/metrics")
        .build()
        .unwrap();
    let variants = vec![
        (
            "bare",
            actix_batch(
                &system,
                path,
                system.block_on(test::init_service(app(App::new()))),
            ),
        ),
        (
            "no-op middleware",
            actix_batch(
                &system,
                path,
                system.block_on(test::init_service(
                    app(App::new()).wrap(vitals_benches::noop::NoopMiddleware),
                )),
            ),
        ),
        (
            "vitals",
            actix_batch(
                &system,
                path,
                system.block_on(test::init_service(app(App::new()).wrap(ours))),
            ),
        ),
        (
            "actix-web-prom",
            actix_batch(
                &system,
                path,
                system.block_on(test::init_service(app(App::new()).wrap(theirs))),
            ),
        ),
    ];
    report(name, mode, variants);
    if matches!(mode, Mode::Counted { variant, .. } if *variant != 2) {
        return;
    }
    let route = if path(0) == "/health" {
        "/health"
    } else {
        "/users/{id}"
    };
    assert!(
        recorded(&registry, route),
        "the middleware recorded what it measured"
    );
}

fn actix_batch<S, B>(
    system: &std::rc::Rc<actix_web::rt::SystemRunner>,
    path: fn(u64) -> String,
    app: S,
) -> Batch
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>
        + 'static,
    B: MessageBody + 'static,
{
    let system = std::rc::Rc::clone(system);
    Box::new(move |first| {
        system.block_on(async {
            for i in first..first + BATCH {
                let request = test::TestRequest::get().uri(&path(i)).to_request();
                let response = test::call_service(&app, request).await;
                black_box(test::read_body(response).await);
            }
        });
    })
}

fn recorded(registry: &Registry, route: &str) -> bool {
    registry
        .get_sample_value(
            "http_requests_total",
            &[("method", "GET"), ("route", route), ("status", "200")],
        )
        .is_some_and(|n| n > 0.0)
}

/// Times `rounds` rounds of every variant (the first is the bare app) and prints each one's
/// added cost per request, and vitals' added cost as a share of the peer's (the last).
fn report(name: &str, mode: &Mode, mut variants: Vec<(&str, Batch)>) {
    let rounds = match *mode {
        Mode::Timed { rounds } => rounds,
        Mode::Counted {
            variant, requests, ..
        } => {
            let batch = &mut variants[variant].1;
            batch(0); // warm-up
            measured(batch, requests.div_ceil(BATCH));
            println!(
                "{name}, {}: {} requests measured",
                variants[variant].0,
                requests.div_ceil(BATCH) * BATCH
            );
            return;
        }
    };
    let n = variants.len();
    // Warm-up: caches, allocator, the middleware's remembered routes.
    let mut first = 0;
    for (_, batch) in &mut variants {
        batch(first);
        first += BATCH;
    }
    // Per variant, per round: nanoseconds per request.
    let times = rotated_rounds(rounds, n, BATCH, |v| {
        (variants[v].1)(first);
        first += BATCH;
    });
    let added: Vec<Vec<f64>> = times
        .iter()
        .map(|t| t.iter().zip(&times[0]).map(|(m, b)| m - b).collect())
        .collect();
    println!(
        "{name}: the bare app takes {:.0} ns per request",
        median(&times[0])
    );
    for v in 1..n {
        let (low, mid, high) = quartiles(&added[v]);
        println!(
            "  {:<18} +{mid:>4.0} ns ({low:.0} to {high:.0})",
            variants[v].0
        );
    }
    let ours = median(&added[n - 2]);
    let theirs = median(&added[n - 1]);
    let per_round: Vec<f64> = added[n - 2]
        .iter()
        .zip(&added[n - 1])
        .map(|(o, t)| o / t)
        .collect();
    let (low, _, high) = quartiles(&per_round);
    println!(
        "  vitals' added cost / {}'s: {:.2} (per-round ratios, middle half: {low:.2} to {high:.2})\n",
        variants[n - 1].0,
        ours / theirs
    );
}

/// Times `rounds` rounds of `run(i)` for each `i` below `n`, the order rotating from round to
/// round, so that the machine's drift hits every `i` alike. Per `i`, per round: the time of
/// one run divided by `per`, in nanoseconds.
fn rotated_rounds(rounds: usize, n: usize, per: u64, mut run: impl FnMut(usize)) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let start = Instant::now();
            run(i);
            #[allow(clippy::cast_precision_loss)]
            times[i].push(start.elapsed().as_nanos() as f64 / per as f64);
        }
    }
    times
}

/// Runs `batches` batches: the requests whose instructions `--count` counts.
#[inline(never)]
fn measured(batch: &mut Batch, batches: u64) {
    for b in 1..=batches {
        batch(b * BATCH);
    }
}

fn median(values: &[f64]) -> f64 {
    quartiles(values).1
}

fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: usize| sorted[(sorted.len() - 1) * q / 4];
    (at(1), at(2), at(3))
}
