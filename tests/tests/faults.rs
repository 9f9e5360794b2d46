//! The export paths against a collector that misbehaves: down, slow, refusing, asking to come
//! back later, resetting the connection, partly rejecting, behind TLS with a certificate we do
//! not trust, and back after an outage, over plain HTTP and over TLS. Every collector here is a
//! scripted stand-in on 127.0.0.1 (`vitals_tests::http::CaptureServer`).

use std::net::SocketAddr;
use std::time::Duration;

use vitals_core::otlp::{OtlpExporter, PushError, Retry};
use vitals_core::push::Pushgateway;
use vitals_core::Registry;
use vitals_tests::http::{test_ca_pem, test_tls_config, Answer, CaptureServer};
use vitals_tests::prometheus::{free_port, poll};
use vitals_tests::python_decode_otlp;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Retries quick enough for a test, and bounded.
fn quick() -> Retry {
    Retry::default()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100))
        .max_elapsed(Duration::from_secs(10))
}

fn registry_with_jobs(n: u64) -> (Registry, vitals_core::Counter) {
    let registry = Registry::new();
    let jobs = registry.counter("jobs", "Jobs done.").register().unwrap();
    jobs.inc_by(n);
    (registry, jobs)
}

/// The value of `jobs` in an OTLP request body, as Python's OTLP decoder reads it.
fn exported_jobs(body: &[u8]) -> String {
    python_decode_otlp(body)
        .into_iter()
        .find(|l| l.starts_with("point jobs "))
        .unwrap_or_else(|| panic!("no jobs point"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_mean_later_are_retried_until_accepted() {
    let (registry, _) = registry_with_jobs(3);
    let collector = CaptureServer::scripted(
        loopback(),
        vec![Answer::Status(503), Answer::Status(502), Answer::Reset],
        None,
    );
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .retry(quick());
    exporter
        .export()
        .await
        .expect("accepted on the fourth attempt");
    let requests = collector.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|r| r.body == requests[0].body),
        "the same body each time"
    );
    assert!(exported_jobs(&requests[3].body).contains("value=3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let (registry, _) = registry_with_jobs(1);
    let collector = CaptureServer::scripted(loopback(), vec![Answer::RetryAfter(429, 1)], None);
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .retry(quick());
    exporter.export().await.unwrap();
    let requests = collector.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    // The backoff alone would have waited 20 to 40 ms.
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_budget_ends_the_retries_at_once() {
    let (registry, _) = registry_with_jobs(1);
    let collector = CaptureServer::scripted(loopback(), vec![Answer::RetryAfter(503, 3600)], None);
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .retry(quick());
    let err = exporter.export().await.unwrap_err();
    assert!(
        matches!(err, PushError::Rejected { status: 503, .. }),
        "{err}"
    );
    assert_eq!(collector.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_not_retried() {
    let (registry, _) = registry_with_jobs(1);
    for status in [400, 401, 500] {
        let collector = CaptureServer::scripted(loopback(), vec![Answer::Status(status)], None);
        let exporter = OtlpExporter::new(&registry, &collector.url())
            .unwrap()
            .retry(quick());
        let err = exporter.export().await.unwrap_err();
        assert!(
            matches!(err, PushError::Rejected { status: s, .. } if s == status),
            "{err}"
        );
        assert_eq!(collector.requests().len(), 1, "{status} was not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_collector_times_out_each_attempt_and_the_retries_stop_in_time() {
    let (registry, _) = registry_with_jobs(1);
    let collector = CaptureServer::scripted(
        loopback(),
        // One connection at a time: each hangs a little longer than the timeout, then the next
        // attempt, waiting in the backlog, is read.
        vec![Answer::Hang(Duration::from_millis(300)); 3],
        None,
    );
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .timeout(Duration::from_millis(200))
        .retry(quick().max_elapsed(Duration::from_millis(500)));
    let err = exporter.export().await.unwrap_err();
    assert!(matches!(err, PushError::Timeout(_)), "{err}");
    let attempts = collector.requests().len();
    assert!(
        (2..=3).contains(&attempts),
        "{attempts} attempts within the budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_success_is_surfaced_and_not_retried() {
    let (registry, _) = registry_with_jobs(1);
    // ExportMetricsServiceResponse { partial_success { rejected_data_points: 2,
    // error_message: "too old" } }
    let mut answer = vec![0x0a, 0x0b, 0x08, 0x02, 0x12, 0x07];
    answer.extend_from_slice(b"too old");
    let collector = CaptureServer::scripted(loopback(), vec![Answer::Body(answer)], None);
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .retry(quick());
    match exporter.export().await {
        Err(PushError::PartiallyRejected {
            rejected_points,
            message,
        }) => {
            assert_eq!(rejected_points, 2);
            assert_eq!(message, "too old");
        }
        other => panic!("expected a partial success, got {other:?}"),
    }
    assert_eq!(collector.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzipped_exports_decode_to_what_was_recorded() {
    let (registry, _) = registry_with_jobs(41);
    let collector = CaptureServer::start(&[]);
    let exporter = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .gzip(true);
    exporter.export().await.unwrap();
    let request = collector.requests().pop().unwrap();
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_ne!(request.body, request.decoded_body());
    assert!(exported_jobs(&request.decoded_body()).contains("value=41"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_reaches_a_collector_we_trust_and_refuses_one_we_do_not() {
    let (registry, _) = registry_with_jobs(5);
    let collector = CaptureServer::scripted(loopback(), vec![], Some(test_tls_config()));
    assert!(collector.url().starts_with("https://localhost:"));

    // Without the test CA, the certificate is refused, once, with the reason.
    let untrusting = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .retry(quick());
    let err = untrusting.export().await.unwrap_err();
    assert!(matches!(err, PushError::Tls(_)), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        collector.requests().is_empty(),
        "nothing was sent in the clear"
    );

    let trusting = OtlpExporter::new(&registry, &collector.url())
        .unwrap()
        .root_certificates(&test_ca_pem())
        .unwrap();
    trusting.export().await.unwrap();
    let request = collector
        .requests()
        .pop()
        .expect("the export arrived over TLS");
    assert_eq!(request.request_line, "POST /v1/metrics HTTP/1.1");
    assert!(exported_jobs(&request.body).contains("value=5"));

    // The Pushgateway client speaks TLS the same way.
    let gateway = Pushgateway::new(&collector.url())
        .unwrap()
        .root_certificates(&test_ca_pem())
        .unwrap();
    gateway.push(&registry, "tls", &[]).await.unwrap();
    let pushed = collector.requests().pop().unwrap();
    assert_eq!(pushed.request_line, "PUT /metrics/job/tls HTTP/1.1");
    assert!(String::from_utf8_lossy(&pushed.body).contains("jobs_total 5"));
}

/// A collector down for a while, then back: the first export it receives carries every
/// increment made during the outage, because OTLP here is cumulative.
async fn outage_then_recovery(tls: bool) {
    let (registry, jobs) = registry_with_jobs(1);
    let addr = free_port();
    let url = if tls {
        format!("https://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    let mut exporter = OtlpExporter::new(&registry, &url)
        .unwrap()
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(500))
        .retry(Retry::never());
    if tls {
        exporter = exporter.root_certificates(&test_ca_pem()).unwrap();
    }
    let running = exporter.start().unwrap();
    // Down: nothing listens on the port; exports fail and are counted.
    let failures = || {
        registry
            .get_sample_value("vitals_otlp_export_failures_total", &[])
            .unwrap_or(0.0)
    };
    for _ in 0..20 {
        jobs.inc();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failed = tokio::task::spawn_blocking({
        let registry = registry.clone();
        move || {
            poll(Duration::from_secs(20), || {
                registry
                    .get_sample_value("vitals_otlp_export_failures_total", &[])
                    .is_some_and(|n| n >= 2.0)
            })
        }
    });
    assert!(
        failed.await.unwrap(),
        "exports failed while the collector was down"
    );
    assert!(running.last_error().is_some());
    jobs.inc_by(100);
    // Back, on the same port.
    let collector = std::sync::Arc::new(CaptureServer::scripted(
        addr,
        vec![],
        tls.then(test_tls_config),
    ));
    let arrived = tokio::task::spawn_blocking({
        let collector = std::sync::Arc::clone(&collector);
        move || poll(Duration::from_secs(20), || !collector.requests().is_empty())
    });
    assert!(
        arrived.await.unwrap(),
        "an export reached the collector once it was back"
    );
    let first = collector.requests().remove(0);
    assert!(
        exported_jobs(&first.body).contains("value=121"),
        "1 before, 20 and 100 during the outage: {}",
        exported_jobs(&first.body)
    );
    assert!(failures() >= 2.0);
    let running = std::sync::Arc::new(running);
    let cleared = tokio::task::spawn_blocking({
        let running = std::sync::Arc::clone(&running);
        move || poll(Duration::from_secs(20), || running.last_error().is_none())
    });
    assert!(
        cleared.await.unwrap(),
        "a successful export clears the last error"
    );
    let running = std::sync::Arc::into_inner(running).expect("the only handle left");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_collector_receives_everything_recorded_meanwhile() {
    outage_then_recovery(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_tls_collector_receives_everything_recorded_meanwhile() {
    outage_then_recovery(true).await;
}
