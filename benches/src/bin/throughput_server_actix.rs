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
    // One server per mode rather than one with a `Condition` middleware: bare means no
    // middleware.
    macro_rules! serve {
        ($app:expr) => {
            HttpServer::new(|| $app.route("/users/{id}", web::get().to(user)))
                .bind(&address)?
                .run()
                .await
        };
    }
    match mode.as_str() {
        "bare" => serve!(App::new()),
        // A middleware that records nothing: the floor under any body-watching middleware.
        "noop" => serve!(App::new().wrap(vitals_benches::noop::NoopMiddleware)),
        "vitals" => serve!(App::new().wrap(vitals_actix::Metrics::new())),
        other => {
            eprintln!("unknown mode {other:?}: use bare, noop or vitals");
            std::process::exit(2);
        }
    }
}
