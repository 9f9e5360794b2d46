//! Exemplars end to end: a real Prometheus, with exemplar storage on, scrapes the example app
//! after requests that carried W3C `traceparent` headers, and answers
//! `/api/v1/query_exemplars` with exactly those trace ids on the latency histogram; malformed
//! headers add none and fail no request.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vitals_tests::http::get;
use vitals_tests::prometheus::PrometheusServer;

/// The trace ids in an exemplar query's answer.
fn trace_ids(body: &str) -> BTreeSet<String> {
    body.match_indices("\"trace_id\":\"")
        .map(|(at, needle)| {
            let rest = &body[at + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_trace_ids_of_the_requests_as_exemplars() {
    let app = axum_app::app().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(move || {
        let prometheus = PrometheusServer::start_with_flags(
            &[address],
            Duration::from_millis(500),
            &["--enable-feature=exemplar-storage"],
        );
        // One traced request per route (each route's latency series keeps its latest).
        let traced = [
            ("/", "0af7651916cd43dd8448eb211c80319c"),
            ("/users/1", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("/users/2/orders/3", "c1b2c3d4e5f60718293a4b5c6d7e8f90"),
        ];
        for (path, trace) in traced {
            let header = format!("00-{trace}-00f067aa0ba902b7-01");
            let response = get(address, path, &[("traceparent", &header)]).unwrap();
            assert_eq!(response.status, 200, "{path}");
        }
        // Malformed ones: the requests succeed, and leave no exemplar.
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-aaf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-bbf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "garbage",
        ] {
            let response = get(address, "/error", &[("traceparent", bad)]).unwrap();
            assert_eq!(response.status, 500, "the /error route answers as always");
        }
        let expected: BTreeSet<String> = traced.iter().map(|(_, t)| (*t).to_owned()).collect();
        let query = "http_request_duration_seconds_bucket{job=\"vitals\"}";
        let started = Instant::now();
        let found = loop {
            let found = trace_ids(&prometheus.query_exemplars(query));
            if found == expected || started.elapsed() > Duration::from_secs(60) {
                break found;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(found, expected, "the latency histogram's exemplars");
        let counted = trace_ids(&prometheus.query_exemplars("http_requests_total{job=\"vitals\"}"));
        assert_eq!(counted, expected, "the request counter's exemplars");
        let errors = prometheus.query_exemplars(
            "http_request_duration_seconds_bucket{job=\"vitals\",route=\"/error\"}",
        );
        assert!(trace_ids(&errors).is_empty(), "{errors}");
    })
    .await
    .unwrap();
    server.abort();
}
