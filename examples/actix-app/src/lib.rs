//! The routes of the actix example, as a library so that the end-to-end test can serve the
//! very same app. They are those of `axum-app`, recorded with the same names and labels.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpResponse};
use bytes::Bytes;
use vitals_actix::Metrics;
use vitals_core::{instrumented, Counter, Registry};

/// The app's metrics: the HTTP middleware's and `#[instrumented]` functions'. A `static`
/// rather than [`Registry::global`] only so that the end-to-end test can run this app and
/// `axum-app` in one process without mixing their figures.
///
/// [`Registry::from_env`]: with the `multiprocess` feature and `PROMETHEUS_MULTIPROC_DIR` set,
/// a multi-process registry on that directory, as the workers of `prefork-app` run it (they
/// check first that the directory can be used; this falls back to memory, and says so, if it
/// cannot).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    Registry::from_env().unwrap_or_else(|error| {
        eprintln!("metrics stay in this process's memory: {error}");
        Registry::new()
    })
});

/// A business metric beside the HTTP ones, on the same `/metrics`: registered in the
/// registry the middleware serves, once, at first use. Registering a new name cannot
/// conflict with anything, so the `expect` documents an invariant rather than handling input.
pub static ORDERS_PLACED: LazyLock<Counter> = LazyLock::new(|| {
    REGISTRY
        .counter("orders_placed", "Orders placed.")
        .register()
        .expect("orders_placed is registered once, as a counter")
});

/// The example's app, recorded into [`REGISTRY`] (a panic in `/panic` is not caught: actix
/// drops the connection, and the request is counted as a 500).
///
/// # Errors
///
/// A conflict with metrics already in `registry` under the HTTP metric names.
pub fn app() -> Result<
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    >,
    vitals_core::Error,
> {
    // `/metrics/live` draws the golden signals of the last five minutes in a browser.
    let metrics = Metrics::builder().registry(&REGISTRY).live(true).build()?;
    Ok(App::new()
        .wrap(metrics)
        .route(
            "/",
            web::get().to(|| async { "Welcome to the vitals example.\n" }),
        )
        .route("/users/{id}", web::get().to(user))
        .route(
            "/users/{id}/orders/{order_id}",
            web::get().to(|path: web::Path<(String, String)>| async move {
                let (id, order) = path.into_inner();
                format!("order {order} of user {id}\n")
            }),
        )
        .route(
            "/orders",
            web::post().to(|| async {
                ORDERS_PLACED.inc();
                HttpResponse::Created().body("order placed\n")
            }),
        )
        .route("/slow", web::get().to(slow))
        .route(
            "/error",
            web::get().to(|| async { HttpResponse::InternalServerError().body("failed\n") }),
        )
        .route("/panic", web::get().to(panics))
        .route("/stream", web::get().to(stream)))
}

async fn user(id: web::Path<String>) -> HttpResponse {
    match find_user(&id).await {
        Ok(name) => HttpResponse::Ok().body(format!("{name}\n")),
        Err(UnknownUser) => HttpResponse::NotFound().finish(),
    }
}

/// A user id that is not a number.
#[derive(Debug)]
pub struct UnknownUser;

/// The business logic behind `/users/{id}`: `function_calls_total{function="find_user"}`,
/// with `result="error"` for the ids it cannot find.
#[instrumented(registry = REGISTRY)]
pub async fn find_user(id: &str) -> Result<String, UnknownUser> {
    let id: u64 = id.parse().map_err(|_| UnknownUser)?;
    Ok(format!("user {id}"))
}

async fn slow() -> &'static str {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    actix_web::rt::time::sleep(Duration::from_millis(50 + u64::from(nanos % 151))).await;
    "slow, but here\n"
}

#[allow(clippy::unused_async)]
async fn panics() -> &'static str {
    panic!("the /panic handler panics, as promised")
}

async fn stream() -> HttpResponse {
    // Five chunks, 100 ms apart: about 500 ms of body, all of it in the latency.
    let chunks = futures_util::stream::unfold(0u8, |i| async move {
        if i == 5 {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("chunk {}\n", i + 1))),
            i + 1,
        ))
    });
    HttpResponse::Ok().streaming(chunks)
}
