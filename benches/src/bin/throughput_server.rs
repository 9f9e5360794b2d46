//! The server of the throughput benchmark (`benches/throughput.sh`): an axum router, bare,
//! with a layer that records nothing, or with vitals' `MetricsLayer`, on the address given.
//!
//! `throughput_server <bare|noop|vitals> <address>`

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
        "vitals" => router.layer(vitals_tower::MetricsLayer::new()),
        // A layer that records nothing: the floor under any body-watching middleware.
        "noop" => router.layer(vitals_benches::noop::NoopLayer),
        other => {
            eprintln!("unknown mode {other:?}: use bare, noop or vitals");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {address}: {e}"));
    axum::serve(listener, app).await.expect("the server runs");
}
