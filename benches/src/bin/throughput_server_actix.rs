//! The actix-web server of the throughput benchmark (`benches/throughput.sh actix`): a bare
//! app, the same with a middleware that records nothing, or with vitals' `Metrics`
//! middleware, on the address given, with one worker per core.
//!
//! `throughput_server_actix <bare|noop|vitals> <address>`

use actix_web::{web, App, HttpServer};

async fn user() -> &'static str {
    "a user"
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    // Two servers rather than one with a `Condition` middleware: bare means no middleware.
    match mode.as_str() {
        "bare" => {
            HttpServer::new(|| App::new().route("/users/{id}", web::get().to(user)))
                .bind(&address)?
                .run()
                .await
        }
        // A middleware that records nothing: the floor under any body-watching middleware.
        "noop" => {
            HttpServer::new(|| {
                App::new()
                    .wrap(vitals_benches::noop::NoopMiddleware)
                    .route("/users/{id}", web::get().to(user))
            })
            .bind(&address)?
            .run()
            .await
        }
        "vitals" => {
            HttpServer::new(|| {
                App::new()
                    .wrap(metrics_actix::Metrics::new())
                    .route("/users/{id}", web::get().to(user))
            })
            .bind(&address)?
            .run()
            .await
        }
        other => {
            eprintln!("unknown mode {other:?}: use bare, noop or vitals");
            std::process::exit(2);
        }
    }
}
