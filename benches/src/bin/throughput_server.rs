//! The server of the throughput benchmark (`benches/throughput.sh`): an axum router, bare or
//! with vitals' `MetricsLayer`, on the address given.
//!
//! `throughput_server <bare|vitals> <address>`

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let router = Router::new().route("/users/{id}", get(|| async { "a user" }));
    let app = match mode.as_str() {
        "bare" => router,
        "vitals" => router.layer(metrics_tower::MetricsLayer::new()),
        other => {
            eprintln!("unknown mode {other:?}: use bare or vitals");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {address}: {e}"));
    axum::serve(listener, app).await.expect("the server runs");
}
