//! The main vitals example: an axum service with request rate, errors, latency and in-flight
//! requests per route, served at `/metrics`.
//!
//! Run it with `cargo run -p axum-app` (it listens on `LISTEN`, `127.0.0.1:3000` by default),
//! then try `curl localhost:3000/users/42`, `curl localhost:3000/stream`, and
//! `curl localhost:3000/metrics`, and open
//! <http://localhost:3000/metrics/live> in a browser.

use vitals_core::ProcessCollector;

#[tokio::main]
async fn main() {
    let address = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    // The process's CPU, memory and file descriptors, next to the HTTP metrics.
    let _ = axum_app::REGISTRY.register_collector("process", ProcessCollector::new());
    let app = match axum_app::app() {
        Ok(app) => app,
        Err(error) => {
            eprintln!("cannot register the HTTP metrics: {error}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "listening on http://{address} (metrics at http://{address}/metrics, \
         live view at http://{address}/metrics/live)"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("server error: {error}");
        std::process::exit(1);
    }
}
