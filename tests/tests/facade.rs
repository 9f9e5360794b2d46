//! The `metrics` facade recorded into vitals: a module that knows only `metrics::counter!`,
//! `gauge!` and `histogram!` shows its series on the layer's `/metrics`, next to the HTTP
//! ones, with their help and units, in a form promtool and Python's parser accept.

use std::net::SocketAddr;

use axum::routing::get;
use vitals_core::facade::FacadeRecorder;
use vitals_core::Registry;
use vitals_tests::http::get as http_get;
use vitals_tests::{promtool_check_metrics, python_parse_text, ParsedSample};

/// Stands for a dependency that records through the facade and knows nothing of vitals.
mod mail_queue {
    pub(crate) fn describe() {
        metrics::describe_counter!("mail.sent", "Mails sent.");
        metrics::describe_histogram!(
            "mail.send_time",
            metrics::Unit::Milliseconds,
            "Time to hand a mail to the relay."
        );
        metrics::describe_gauge!("mail.queue_depth", "Mails waiting.");
    }

    pub(crate) fn send(relay: &str, millis: f64) {
        metrics::counter!("mail.sent", "relay" => relay.to_owned(), "tls" => "yes").increment(1);
        metrics::histogram!("mail.send_time", "relay" => relay.to_owned()).record(millis);
        metrics::gauge!("mail.queue_depth").decrement(1.0);
    }

    pub(crate) fn enqueue(n: u32) {
        metrics::gauge!("mail.queue_depth").increment(f64::from(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_series_are_served_next_to_the_http_ones() {
    let registry = Registry::new();
    FacadeRecorder::new(&registry).install().unwrap();
    // A second global recorder is refused with an error, not a panic.
    assert!(FacadeRecorder::new(&Registry::new()).install().is_err());
    mail_queue::describe();
    mail_queue::enqueue(5);

    let layer = vitals_tower::MetricsLayer::builder()
        .registry(&registry)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/send/{relay}",
            get(
                |axum::extract::Path(relay): axum::extract::Path<String>| async move {
                    mail_queue::send(&relay, 120.0);
                    "sent\n"
                },
            ),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (text, openmetrics) = tokio::task::spawn_blocking(move || {
        for relay in ["a", "b", "a"] {
            assert_eq!(
                http_get(address, &format!("/send/{relay}"), &[])
                    .unwrap()
                    .status,
                200
            );
        }
        let text = http_get(address, "/metrics", &[]).unwrap().text();
        let openmetrics = http_get(
            address,
            "/metrics",
            &[("Accept", "application/openmetrics-text; version=1.0.0")],
        )
        .unwrap()
        .text();
        (text, openmetrics)
    })
    .await
    .unwrap();
    server.abort();

    promtool_check_metrics(&text).unwrap();
    let samples = python_parse_text(&text);
    let find = |name: &str, labels: &[(&str, &str)]| ParsedSample::find(&samples, name, labels);
    // Labels in any order are one series; the two relays are two.
    assert_eq!(
        find("mail_sent_total", &[("relay", "a"), ("tls", "yes")]),
        Some(2.0)
    );
    assert_eq!(
        find("mail_sent_total", &[("tls", "yes"), ("relay", "b")]),
        Some(1.0)
    );
    // Milliseconds became seconds, in the name and in the values.
    assert_eq!(
        find("mail_send_time_seconds_count", &[("relay", "a")]),
        Some(2.0)
    );
    assert_eq!(
        find("mail_send_time_seconds_sum", &[("relay", "a")]),
        Some(0.24)
    );
    assert_eq!(find("mail_queue_depth", &[]), Some(2.0));
    // Next to the HTTP series of the same requests.
    assert_eq!(
        find(
            "http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/send/{relay}"),
                ("status", "200")
            ]
        ),
        Some(3.0)
    );
    assert!(
        text.contains("# HELP mail_sent_total Mails sent.\n"),
        "{text}"
    );
    assert!(
        openmetrics.contains("# UNIT mail_send_time_seconds seconds\n"),
        "{openmetrics}"
    );
    assert!(
        !text.contains("vitals_facade_errors_total{"),
        "no errors: {text}"
    );
}
