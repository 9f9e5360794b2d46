//! The end-to-end proof: the example apps (axum and actix-web), scraped by a real Prometheus,
//! answer the four golden-signal queries with the traffic that was sent.

use std::net::SocketAddr;
use std::time::Duration;

use vitals_tests::http::get;
use vitals_tests::prometheus::PrometheusServer;

#[path = "support/actix_app.rs"]
mod actix_app_server;
use actix_app_server::ActixApp;

/// The request mix: path, how many times, expected status. (`/panic` is sent to the axum app
/// only: actix-web does not catch panics, it drops the connection.)
const TRAFFIC: &[(&str, usize, u16)] = &[
    ("/", 10, 200),
    ("/users/1", 8, 200),
    ("/users/2", 7, 200),
    ("/users/3/orders/9", 5, 200),
    ("/error", 4, 500),
    ("/panic", 2, 500),
    ("/slow", 6, 200),
    ("/stream", 2, 200),
    ("/no/such/page", 3, 404),
    ("/wp-login.php", 3, 404),
];

/// Sends the requests of the mix whose rank (per path) falls in `range(times)`.
fn send_traffic(
    app: SocketAddr,
    traffic: &[(&str, usize, u16)],
    range: impl Fn(usize) -> std::ops::Range<usize>,
) {
    for &(path, times, status) in traffic {
        for _ in range(times) {
            let response = get(app, path, &[]).expect("the app answers");
            assert_eq!(response.status, status, "{path}");
        }
    }
}

fn first(results: &[(String, f64)]) -> f64 {
    results.first().map_or(f64::NAN, |r| r.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_the_golden_signals_of_the_axum_app() {
    let app = axum_app::app().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(move || check_golden_signals(address, TRAFFIC))
        .await
        .unwrap();
    server.abort();
}

#[test]
fn prometheus_sees_the_golden_signals_of_the_actix_app() {
    let traffic: Vec<(&str, usize, u16)> = TRAFFIC
        .iter()
        .copied()
        .filter(|t| t.0 != "/panic")
        .collect();
    let app = ActixApp::start();
    check_golden_signals(app.address, &traffic);
    app.stop();
}

/// Sends the traffic to the app at `address` while a real Prometheus scrapes it, then checks
/// the four golden signals against what was sent.
fn check_golden_signals(address: SocketAddr, traffic: &[(&str, usize, u16)]) {
    let total: usize = traffic.iter().map(|t| t.1).sum();
    let errors: usize = traffic.iter().filter(|t| t.2 >= 500).map(|t| t.1).sum();
    let prometheus = PrometheusServer::start(&[address], Duration::from_millis(500));
    let within = Duration::from_secs(60);
    // One request per path first, and a scrape of them: a series that first appears with its
    // final value has no increase for `rate()` to see.
    send_traffic(address, traffic, |_| 0..1);
    #[allow(clippy::cast_precision_loss)]
    let first_phase = traffic.len() as f64;
    prometheus.wait_for("sum(http_requests_total{job=\"vitals\"})", within, |v| {
        v == first_phase
    });
    send_traffic(address, traffic, |times| 1..times);

    // Traffic: every request counted once, by route template.
    #[allow(clippy::cast_precision_loss)]
    let sent = total as f64;
    let all = prometheus.wait_for("sum(http_requests_total{job=\"vitals\"})", within, |v| {
        v == sent
    });
    assert_eq!(first(&all), sent, "{all:?}");
    let by_route = prometheus.query("sum by (route) (http_requests_total{job=\"vitals\"})");
    let route_count = |route: &str| {
        by_route
            .iter()
            .find(|(labels, _)| labels.contains(&format!("\"route\":\"{route}\"")))
            .map_or(0.0, |r| r.1)
    };
    assert_eq!(route_count("/users/{id}"), 15.0, "{by_route:?}");
    assert_eq!(route_count("/users/{id}/orders/{order_id}"), 5.0);
    assert_eq!(
        route_count("__unmatched__"),
        6.0,
        "404s share one route value"
    );
    assert!(
        !by_route.iter().any(|(l, _)| l.contains("wp-login")),
        "no raw path"
    );
    let rate = prometheus.wait_for(
        "sum(rate(http_requests_total{job=\"vitals\",route=\"/users/{id}\"}[1m]))",
        within,
        |v| v > 0.0,
    );
    assert!(first(&rate) > 0.0, "a request rate: {rate:?}");

    // Errors: the 5xx over everything.
    let error_ratio = prometheus.query(
        "sum(http_requests_total{job=\"vitals\",status=~\"5..\"}) / sum(http_requests_total{job=\"vitals\"})",
    );
    #[allow(clippy::cast_precision_loss)]
    let expected_ratio = errors as f64 / sent;
    assert!(
        (first(&error_ratio) - expected_ratio).abs() < 1e-9,
        "{error_ratio:?}"
    );

    // Latency: /slow sleeps 50 to 200 ms; /stream's body takes about 500 ms, all counted.
    let slow_p99 = prometheus.query(
        "histogram_quantile(0.99, sum by (le) (http_request_duration_seconds_bucket{job=\"vitals\",route=\"/slow\"}))",
    );
    let p99 = first(&slow_p99);
    assert!((0.05..=0.25).contains(&p99), "p99 of /slow = {p99}");
    let stream_p50 = prometheus.query(
        "histogram_quantile(0.5, sum by (le) (http_request_duration_seconds_bucket{job=\"vitals\",route=\"/stream\"}))",
    );
    let p50 = first(&stream_p50);
    assert!(
        p50 >= 0.25,
        "the streaming body is in the latency: p50 = {p50}"
    );

    // Saturation: nothing left in flight once the traffic is done.
    let in_flight = prometheus.query("sum(http_requests_in_flight{job=\"vitals\"})");
    assert_eq!(first(&in_flight), 0.0, "{in_flight:?}");

    // The business function behind /users/{id}, instrumented with #[instrumented]: one call
    // per request, all found, none in flight.
    let users = prometheus
        .query("sum by (result) (function_calls_total{job=\"vitals\",function=\"find_user\"})");
    let calls = |result: &str| {
        users
            .iter()
            .find(|(labels, _)| labels.contains(&format!("\"result\":\"{result}\"")))
            .map_or(f64::NAN, |r| r.1)
    };
    assert_eq!(calls("ok"), 15.0, "{users:?}");
    assert_eq!(calls("error"), 0.0, "{users:?}");
    let busy =
        prometheus.query("sum(function_calls_concurrent{job=\"vitals\",function=\"find_user\"})");
    assert_eq!(first(&busy), 0.0, "{busy:?}");
}
