//! The Pushgateway client against a real Pushgateway: what we push is what the gateway serves
//! back, push-add and delete do what they say, and a gateway that refuses, is down or is slow
//! gives a clear error without losing anything.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use vitals_core::push::{PushError, Pushgateway, Retry};
use vitals_core::Registry;
use vitals_tests::http::get;
use vitals_tests::prometheus::PushgatewayServer;
use vitals_tests::{python_parse_text, ParsedSample};

/// What the gateway serves, read by Python's parser.
async fn served(gateway: SocketAddr) -> Vec<ParsedSample> {
    let text = tokio::task::spawn_blocking(move || get(gateway, "/metrics", &[]).unwrap().text())
        .await
        .unwrap();
    python_parse_text(&text)
}

fn value(samples: &[ParsedSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_push_add_and_delete_reach_a_real_pushgateway() {
    let server = PushgatewayServer::start();
    let gateway = Pushgateway::new(&server.url()).unwrap();
    let grouping = [("shard", "eu/1"), ("attempt", "")];
    let group = [("job", "nightly import"), ("shard", "eu/1")];

    let batch = Registry::new();
    batch
        .counter("rows_processed", "Rows processed.")
        .register()
        .unwrap()
        .inc_by(1_000);
    let duration = batch
        .histogram("batch_duration_seconds", "Time per batch.")
        .register()
        .unwrap();
    duration.observe(0.3);
    duration.observe(4.0);
    gateway
        .push(&batch, "nightly import", &grouping)
        .await
        .unwrap();
    let samples = served(server.addr()).await;
    assert_eq!(
        value(&samples, "rows_processed_total", &group),
        Some(1_000.0)
    );
    assert_eq!(
        value(&samples, "batch_duration_seconds_count", &group),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            "batch_duration_seconds_bucket",
            &[("le", "0.5"), ("shard", "eu/1")]
        ),
        Some(1.0)
    );

    // push-add keeps the other metrics of the group; push replaces them all.
    let extra = Registry::new();
    extra
        .gauge(
            "last_success_timestamp_seconds",
            "When the batch last succeeded.",
        )
        .register()
        .unwrap()
        .set(1_700_000_000);
    gateway
        .push_add(&extra, "nightly import", &grouping)
        .await
        .unwrap();
    let samples = served(server.addr()).await;
    assert_eq!(
        value(&samples, "rows_processed_total", &group),
        Some(1_000.0)
    );
    assert_eq!(
        value(&samples, "last_success_timestamp_seconds", &group),
        Some(1_700_000_000.0)
    );
    gateway
        .push(&extra, "nightly import", &grouping)
        .await
        .unwrap();
    let samples = served(server.addr()).await;
    assert_eq!(value(&samples, "rows_processed_total", &group), None);

    gateway.delete("nightly import", &grouping).await.unwrap();
    let samples = served(server.addr()).await;
    assert_eq!(
        value(&samples, "last_success_timestamp_seconds", &group),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_down_or_slow_gateway_is_a_clear_error_and_loses_nothing() {
    let server = PushgatewayServer::start();
    let gateway = Pushgateway::new(&server.url()).unwrap();
    let registry = Registry::new();
    let jobs = registry.counter("jobs", "Jobs.").register().unwrap();
    jobs.inc();

    // The gateway refuses a metric whose type contradicts the same name in another group.
    gateway.push(&registry, "refusal", &[]).await.unwrap();
    let conflicting = Registry::new();
    conflicting
        .gauge("jobs_total", "Jobs.")
        .register()
        .unwrap()
        .set(1);
    let err = gateway
        .push_add(&conflicting, "other job", &[])
        .await
        .unwrap_err();
    match &err {
        PushError::Rejected { status, body } => {
            assert_eq!(*status, 400, "{body}");
            assert!(!body.is_empty(), "the gateway's own words are kept");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert!(err.to_string().contains("400"), "{err}");

    // Nothing listens: a connection error, quickly (retries are the fault suite's subject).
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = Pushgateway::new(&format!("http://{closed}"))
        .unwrap()
        .retry(Retry::never());
    let err = down.push(&registry, "down", &[]).await.unwrap_err();
    assert!(matches!(err, PushError::Connect(_)), "{err}");

    // Something listens but never answers: the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = Pushgateway::new(&format!("http://{}", silent.local_addr().unwrap()))
        .unwrap()
        .timeout(Duration::from_millis(300))
        .retry(Retry::never());
    let err = slow.push(&registry, "slow", &[]).await.unwrap_err();
    assert!(matches!(err, PushError::Timeout(_)), "{err}");
    drop(silent);

    // Nothing was lost: the next push to a working gateway carries everything.
    jobs.inc();
    gateway.push(&registry, "recovered", &[]).await.unwrap();
    let samples = served(server.addr()).await;
    assert_eq!(
        value(&samples, "jobs_total", &[("job", "recovered")]),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzipped_pushes_are_read_by_a_real_pushgateway() {
    let server = PushgatewayServer::start();
    let gateway = Pushgateway::new(&server.url()).unwrap().gzip(true);
    let registry = Registry::new();
    registry
        .counter("rows", "Rows.")
        .register()
        .unwrap()
        .inc_by(12_345);
    gateway.push(&registry, "gzipped", &[]).await.unwrap();
    let samples = served(server.addr()).await;
    assert_eq!(
        value(&samples, "rows_total", &[("job", "gzipped")]),
        Some(12_345.0)
    );
}
