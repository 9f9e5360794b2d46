//! A batch job that records its work and pushes it to a Pushgateway when it ends.
//!
//! Run it with `PUSHGATEWAY_URL=http://127.0.0.1:9091 cargo run -p batch-job` (a gateway
//! started with `prometheus-pushgateway --web.listen-address=127.0.0.1:9091`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vitals_core::push::Pushgateway;
use vitals_core::{Buckets, Registry};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(url) = std::env::var("PUSHGATEWAY_URL") else {
        eprintln!("set PUSHGATEWAY_URL, e.g. PUSHGATEWAY_URL=http://127.0.0.1:9091");
        std::process::exit(2);
    };
    let registry = Registry::new();
    let rows = registry
        .counter("import_rows_processed", "Rows imported.")
        .label_names(["table"])
        .register()
        .expect("valid metric");
    let batch_time = registry
        .histogram("import_batch_duration_seconds", "Time to import one batch.")
        .buckets(Buckets::exponential(0.001, 4.0, 8).expect("valid buckets"))
        .register()
        .expect("valid metric");
    let last_success = registry
        .float_gauge(
            "import_last_success_timestamp_seconds",
            "When the import last finished.",
        )
        .register()
        .expect("valid metric");

    let started = Instant::now();
    for (table, batches) in [("customers", 3), ("orders", 5)] {
        for _ in 0..batches {
            let _timer = batch_time.start_timer();
            std::thread::sleep(Duration::from_millis(5)); // the work
            rows.with_labels(&[("table", table)])
                .expect("one label")
                .inc_by(1_000);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    last_success.set(now.as_secs_f64());

    let gateway = match Pushgateway::new(&url) {
        Ok(gateway) => gateway.timeout(Duration::from_secs(5)),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    match gateway
        .push(&registry, "nightly_import", &[("shard", "eu-1")])
        .await
    {
        Ok(()) => println!(
            "imported in {:?}; pushed to {url}/metrics/job/nightly_import/shard/eu-1",
            started.elapsed()
        ),
        Err(error) => {
            eprintln!("push failed: {error}");
            std::process::exit(1);
        }
    }
}
