//! A queue worker, not a web server, that serves its metrics with the standalone exporter.
//!
//! Run it with `cargo run -p worker` and read `curl 127.0.0.1:9464/metrics` (set `LISTEN` for
//! another address). Stop it with Ctrl-C: the exporter finishes scrapes in progress.

use std::net::SocketAddr;
use std::time::Duration;

use vitals_core::exporter::Exporter;
use vitals_core::{ProcessCollector, Registry};

#[tokio::main]
async fn main() {
    let address: SocketAddr = match std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:9464".to_owned())
        .parse()
    {
        Ok(address) => address,
        Err(error) => {
            eprintln!("LISTEN is not an address: {error}");
            std::process::exit(2);
        }
    };
    let registry = Registry::new();
    let _ = registry.register_collector("process", ProcessCollector::new());
    let jobs = registry
        .counter("worker_jobs", "Jobs processed.")
        .label_names(["outcome"])
        .register()
        .expect("valid metric");
    let queue_depth = registry
        .gauge("worker_queue_depth", "Jobs waiting.")
        .register()
        .expect("valid metric");
    let busy = registry
        .gauge("worker_busy", "Jobs being processed.")
        .register()
        .expect("valid metric");

    let server = match Exporter::new(&registry)
        .address(address)
        .live(true)
        .start()
        .await
    {
        Ok(server) => server,
        Err(error) => {
            eprintln!("cannot serve metrics on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "metrics at http://{0}/metrics, live view at http://{0}/metrics/live",
        server.local_addr()
    );

    let work = async {
        for n in 0u64.. {
            queue_depth.set(i64::try_from(20 - n % 20).unwrap_or(0));
            let _busy = busy.track();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let outcome = if n % 10 == 9 { "failed" } else { "ok" };
            jobs.with_labels(&[("outcome", outcome)])
                .expect("one label")
                .inc();
        }
    };
    tokio::select! {
        () = work => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    server.shutdown().await;
}
