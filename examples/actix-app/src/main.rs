//! The actix-web twin of `axum-app`: the same routes and the same metrics, at `/metrics`.
//!
//! Run it with `cargo run -p actix-app` (it listens on `LISTEN`, `127.0.0.1:3001` by default).

use vitals_core::ProcessCollector;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let _ = actix_app::REGISTRY.register_collector("process", ProcessCollector::new());
    // Fail early, with the reason, rather than in every worker.
    if let Err(error) = actix_app::app() {
        eprintln!("cannot register the HTTP metrics: {error}");
        std::process::exit(1);
    }
    println!(
        "listening on http://{address} (metrics at http://{address}/metrics, \
         live view at http://{address}/metrics/live)"
    );
    actix_web::HttpServer::new(move || {
        actix_app::app().expect("registered once above with the same options")
    })
    .bind(&address)?
    .run()
    .await
}
