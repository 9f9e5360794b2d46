//! The actix-web server of the throughput benchmark (`benches/throughput.sh actix`): a bare
//! app, or the same with vitals' `Metrics` middleware, on the address given, with one worker
//! per core.
//!
//! `throughput_server_actix <bare|vitals> <address>`

use actix_web::{web, App, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let with_metrics = match mode.as_str() {
        "bare" => false,
        "vitals" => true,
        other => {
            eprintln!("unknown mode {other:?}: use bare or vitals");
            std::process::exit(2);
        }
    };
    HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::Condition::new(
                with_metrics,
                metrics_actix::Metrics::new(),
            ))
            .route("/users/{id}", web::get().to(|| async { "a user" }))
    })
    .bind(&address)?
    .run()
    .await
}
