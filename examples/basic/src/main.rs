//! The smallest vitals program: register one metric of each type, record into them, and print
//! the Prometheus text exposition a scrape would receive.
//!
//! Run it with `cargo run -p basic`.

use std::time::Duration;

use vitals_core::{encoding::text, Buckets, Error, ProcessCollector, Registry};

fn main() -> Result<(), Error> {
    let registry = Registry::new();
    registry.register_collector("process", ProcessCollector::new())?;
    registry
        .info("app_build", "Build information.")
        .register(&[("version", env!("CARGO_PKG_VERSION"))])?;

    let requests = registry
        .counter("http_requests", "HTTP requests served.")
        .label_names(["method", "route", "status"])
        .register()?;
    let latency = registry
        .histogram(
            "http_request_duration_seconds",
            "Time to serve an HTTP request.",
        )
        .label_names(["method", "route"])
        .register()?;
    let in_flight = registry
        .gauge("http_requests_in_flight", "HTTP requests being served.")
        .register()?;
    let payload = registry
        .summary("upload_size_bytes", "Size of uploaded files.")
        .max_age(Duration::from_secs(60))
        .register()?;
    let queue_depth = registry
        .float_gauge("job_queue_fill_ratio", "How full the job queue is.")
        .register()?;
    let batch = registry
        .histogram("batch_items", "Items per batch.")
        .buckets(Buckets::exponential(1.0, 4.0, 6)?)
        .register()?;

    // Look series up once and keep the handles, as a middleware would.
    let get_user = requests.with_labels(&[
        ("method", "GET"),
        ("route", "/users/{id}"),
        ("status", "200"),
    ])?;
    let get_user_latency = latency.with_labels(&[("method", "GET"), ("route", "/users/{id}")])?;
    for i in 0..100u32 {
        let _guard = in_flight.track();
        get_user.inc();
        get_user_latency.observe(0.002 * f64::from(i % 17));
        payload.observe(f64::from(1024 * (i % 9 + 1)));
        batch.observe(f64::from(i % 50));
    }
    requests
        .with_labels(&[("method", "POST"), ("route", "/users"), ("status", "500")])?
        .inc();
    queue_depth.set(0.25);

    print!("{}", text::encode(&registry));
    Ok(())
}
