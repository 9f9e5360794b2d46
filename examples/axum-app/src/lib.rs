//! The routes of the example service, as a library so that the end-to-end test can serve the
//! very same app.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use tower_http::catch_panic::CatchPanicLayer;
use vitals_core::{instrumented, Counter, Registry};
use vitals_tower::MetricsLayer;

/// The app's metrics: the HTTP layer's and `#[instrumented]` functions'. A `static` rather
/// than [`Registry::global`] only so that the end-to-end test can run this app and
/// `actix-app` in one process without mixing their figures.
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
/// registry the layer serves, once, at first use. Registering a new name cannot conflict
/// with anything, so the `expect` documents an invariant rather than handling input.
pub static ORDERS_PLACED: LazyLock<Counter> = LazyLock::new(|| {
    REGISTRY
        .counter("orders_placed", "Orders placed.")
        .register()
        .expect("orders_placed is registered once, as a counter")
});

/// The example's routes, recorded into [`REGISTRY`] and served with `/metrics` (and the live
/// page, `/metrics/live`):
///
/// | route | answers |
/// |---|---|
/// | `/` | a greeting |
/// | `/users/{id}` | a user |
/// | `/users/{id}/orders/{order_id}` | an order |
/// | `POST /orders` | 201, and counts the order in `orders_placed_total` |
/// | `/slow` | after 50 to 200 ms |
/// | `/error` | 500 |
/// | `/panic` | panics (caught: 500) |
/// | `/stream` | 5 chunks over about 500 ms |
///
/// # Errors
///
/// A conflict with metrics already in `registry` under the HTTP metric names.
pub fn app() -> Result<Router, vitals_core::Error> {
    // `/metrics/live` draws the golden signals of the last five minutes in a browser.
    let metrics = MetricsLayer::builder()
        .registry(&REGISTRY)
        .live(true)
        .build()?;
    Ok(Router::new()
        .route("/", get(|| async { "Welcome to the vitals example.\n" }))
        .route("/users/{id}", get(user))
        .route(
            "/users/{id}/orders/{order_id}",
            get(|Path((id, order)): Path<(String, String)>| async move {
                format!("order {order} of user {id}\n")
            }),
        )
        .route("/orders", post(place_order))
        .route("/slow", get(slow))
        .route(
            "/error",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed\n") }),
        )
        .route("/panic", get(panics))
        .route("/stream", get(stream))
        // Inside the metrics layer: a panic becomes the 500 the layer records.
        .layer(CatchPanicLayer::new())
        .layer(metrics))
}

async fn user(Path(id): Path<String>) -> Result<String, StatusCode> {
    match find_user(&id).await {
        Ok(name) => Ok(format!("{name}\n")),
        Err(UnknownUser) => Err(StatusCode::NOT_FOUND),
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

async fn place_order() -> (StatusCode, &'static str) {
    ORDERS_PLACED.inc();
    (StatusCode::CREATED, "order placed\n")
}

async fn slow() -> &'static str {
    // 50 to 200 ms, varied by the clock's nanoseconds.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    tokio::time::sleep(Duration::from_millis(50 + u64::from(nanos % 151))).await;
    "slow, but here\n"
}

#[allow(clippy::unused_async)]
async fn panics() -> &'static str {
    panic!("the /panic handler panics, as promised")
}

async fn stream() -> Body {
    // Five chunks, 100 ms apart: about 500 ms of body, all of it in the latency.
    let chunks = futures_util::stream::unfold(0u8, |i| async move {
        if i == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("chunk {}\n", i + 1))),
            i + 1,
        ))
    });
    Body::from_stream(chunks)
}
