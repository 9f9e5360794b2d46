//! The standalone exporter, over real HTTP: format negotiation, gzip, auth, errors, shutdown,
//! and a real Prometheus server that scrapes it and answers queries with what we recorded.

use std::io::Read as _;
use std::net::SocketAddr;
use std::time::Duration;

use vitals_core::encoding::{openmetrics, text};
use vitals_core::exporter::Exporter;
use vitals_core::{Buckets, Registry};
use vitals_tests::http::{get, request, HttpResponse};
use vitals_tests::prometheus::PrometheusServer;

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Runs blocking HTTP calls off the runtime's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the blocking call finishes")
}

fn registry() -> Registry {
    let registry = Registry::new();
    registry
        .counter("jobs", "Jobs processed.")
        .label_names(["queue"])
        .register()
        .unwrap()
        .with_labels(&[("queue", "emails")])
        .unwrap()
        .inc_by(42);
    let latency = registry
        .histogram("job_duration_seconds", "Time per job.")
        .buckets(Buckets::new([0.1, 1.0]).unwrap())
        .register()
        .unwrap();
    for v in [0.05, 0.05, 0.5, 2.0] {
        latency.observe(v);
    }
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_negotiates_compresses_and_refuses_what_it_should() {
    let registry = registry();
    let server = Exporter::new(&registry)
        .address(local())
        .bearer_token("s3cret")
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    let auth = ("Authorization", "Bearer s3cret");

    let responses: Vec<HttpResponse> = blocking(move || {
        let ask = |path: &str, headers: &[(&str, &str)]| get(addr, path, headers).unwrap();
        vec![
            ask("/metrics", &[]),
            ask("/metrics", &[("Authorization", "Bearer wrong")]),
            ask("/metrics", &[auth]),
            ask(
                "/metrics",
                &[
                    auth,
                    ("Accept", "application/openmetrics-text; version=1.0.0"),
                ],
            ),
            ask("/metrics", &[auth, ("Accept", "application/json")]),
            ask("/metrics", &[auth, ("Accept", "text/html;q=nonsense, ;;")]),
            ask("/metrics", &[auth, ("Accept-Encoding", "gzip")]),
            ask("/other", &[auth]),
            request(addr, "POST", "/metrics", &[auth]).unwrap(),
            request(addr, "HEAD", "/metrics", &[auth]).unwrap(),
        ]
    })
    .await;
    let [no_auth, wrong, plain, om, json, malformed, gzipped, other, post, head] =
        <[HttpResponse; 10]>::try_from(responses).unwrap();

    assert_eq!(no_auth.status, 401);
    assert_eq!(no_auth.header("www-authenticate"), Some("Bearer"));
    assert_eq!(wrong.status, 401);

    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some(text::CONTENT_TYPE));
    assert_eq!(plain.text(), text::encode(&registry));

    assert_eq!(om.header("content-type"), Some(openmetrics::CONTENT_TYPE));
    assert!(om.text().contains("jobs_total{queue=\"emails\"} 42\n"));
    assert!(om.text().ends_with("# EOF\n"));

    assert_eq!(json.header("content-type"), Some("application/json"));
    assert!(json.text().starts_with("{\"metrics\":[{\"name\":\"jobs\""));

    assert_eq!(malformed.status, 200, "a malformed Accept is not an error");
    assert_eq!(malformed.header("content-type"), Some(text::CONTENT_TYPE));

    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gzipped.body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, text::encode(&registry));
    assert!(gzipped.body.len() < unzipped.len());

    assert_eq!(other.status, 404);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some(text::CONTENT_TYPE));

    server.shutdown().await;
    let after = blocking(move || get(addr, "/metrics", &[auth])).await;
    assert!(after.is_err(), "nothing listens after shutdown: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_a_custom_path_work_and_two_exporters_coexist() {
    let registry = registry();
    let first = Exporter::new(&registry)
        .address(local())
        .path("/internal/metrics")
        .basic_auth("user", "pa:ss")
        .start()
        .await
        .unwrap();
    let second = Exporter::new(&Registry::new())
        .address(local())
        .start()
        .await
        .unwrap();
    let (a, b) = (first.local_addr(), second.local_addr());
    let (ok, refused, default_path, empty) = blocking(move || {
        (
            get(
                a,
                "/internal/metrics",
                &[("Authorization", "Basic dXNlcjpwYTpzcw==")],
            )
            .unwrap(),
            get(
                a,
                "/internal/metrics",
                &[("Authorization", "Basic dXNlcjp3cm9uZw==")],
            )
            .unwrap(),
            get(
                a,
                "/metrics",
                &[("Authorization", "Basic dXNlcjpwYTpzcw==")],
            )
            .unwrap(),
            get(b, "/metrics", &[]).unwrap(),
        )
    })
    .await;
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("jobs_total{queue=\"emails\"} 42"));
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"metrics\"")
    );
    assert_eq!(default_path.status, 404);
    assert_eq!(empty.status, 200);
    assert_eq!(empty.text(), "", "an empty registry exposes nothing");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_exporter_and_answers_queries() {
    let registry = registry();
    let server = Exporter::new(&registry)
        .address(local())
        .start()
        .await
        .unwrap();
    let target = server.local_addr();
    let answers = blocking(move || {
        let prometheus = PrometheusServer::start(&[target], Duration::from_millis(500));
        let within = Duration::from_secs(60);
        let up = prometheus.wait_for("up{job=\"vitals\"}", within, |v| v == 1.0);
        let jobs = prometheus.wait_for("jobs_total{queue=\"emails\"}", within, |v| v == 42.0);
        let count = prometheus.wait_for("job_duration_seconds_count", within, |v| v == 4.0);
        let le_1 = prometheus.wait_for("job_duration_seconds_bucket{le=\"1.0\"}", within, |v| {
            v == 3.0
        });
        let p50 = prometheus.wait_for(
            "histogram_quantile(0.5, job_duration_seconds_bucket)",
            within,
            |v| v.is_finite(),
        );
        (up, jobs, count, le_1, p50)
    })
    .await;
    let (up, jobs, count, le_1, p50) = answers;
    assert_eq!(
        up.first().map(|r| r.1),
        Some(1.0),
        "the target is up: {up:?}"
    );
    assert_eq!(jobs.first().map(|r| r.1), Some(42.0), "{jobs:?}");
    assert_eq!(count.first().map(|r| r.1), Some(4.0), "{count:?}");
    assert_eq!(le_1.first().map(|r| r.1), Some(3.0), "{le_1:?}");
    // Two of four observations are at or below 0.1: the median interpolates inside (0, 0.1].
    let median = p50.first().map_or(f64::NAN, |r| r.1);
    assert!(median > 0.0 && median <= 0.1, "p50 = {median}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_go_away_mid_scrape_do_not_disturb_the_next_scrape() {
    use std::io::Write as _;
    let registry = registry();
    // Enough series that a scrape is several hundred kilobytes.
    let wide = registry
        .counter("wide", "Many series.")
        .label_names(["n"])
        .series_cap(20_000)
        .register()
        .unwrap();
    for n in 0..20_000 {
        wide.with_label_values(&[&n.to_string()]).unwrap().inc();
    }
    let server = Exporter::new(&registry)
        .address(local())
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let after = blocking(move || {
        for _ in 0..20 {
            // Ask, then hang up before reading the answer.
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            drop(stream);
            // Hang up halfway through the request.
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET /metr").unwrap();
            drop(stream);
        }
        get(addr, "/metrics", &[]).unwrap()
    })
    .await;
    assert_eq!(after.status, 200);
    assert!(after.text().contains("wide_total{n=\"19999\"} 1\n"));
    assert!(after.text().contains("jobs_total{queue=\"emails\"} 42\n"));
    server.shutdown().await;
}

/// Reads until the server closes the connection (or `limit` passes, which fails the caller's
/// assertion); returns what it answered.
fn read_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(answer),
        // A reset is a close too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(answer),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_and_cannot_take_every_connection() {
    use std::io::Write as _;
    let registry = registry();
    let server = Exporter::new(&registry)
        .address(local())
        .header_read_timeout(Duration::from_millis(300))
        .max_connections(8)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let outcome = blocking(move || {
        // Slowloris: twice the cap of connections that never finish their headers.
        let mut slow: Vec<std::net::TcpStream> = (0..16)
            .map(|_| {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
                stream
            })
            .collect();
        // The first eight are served, and closed at the header timeout; the others wait in
        // the backlog, and are then served and closed in turn.
        let closed = slow
            .iter_mut()
            .map(|s| read_until_closed(s, Duration::from_secs(20)))
            .filter(Option::is_some)
            .count();
        // A kept-alive connection that goes quiet after its scrape is closed as well.
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answered = read_until_closed(&mut idle, Duration::from_secs(20));
        (closed, answered, get(addr, "/metrics", &[]).unwrap())
    })
    .await;
    let (closed, answered, after) = outcome;
    assert_eq!(closed, 16, "every slow client was cut off");
    let answered =
        String::from_utf8_lossy(&answered.expect("the idle connection was closed")).into_owned();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.contains("jobs_total{queue=\"emails\"} 42"));
    assert_eq!(after.status, 200, "and the exporter still answers");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_the_connection_cap_wait_and_are_then_served() {
    use std::io::Write as _;
    let registry = registry();
    let server = Exporter::new(&registry)
        .address(local())
        .header_read_timeout(Duration::from_secs(60))
        .max_connections(2)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let (waited, served) = blocking(move || {
        // Two connections take both places and send nothing.
        let holders: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // Give the server the moment it needs to accept both.
        std::thread::sleep(Duration::from_millis(200));
        let mut third = std::net::TcpStream::connect(addr).unwrap();
        third
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        // While both places are taken, the third is not answered.
        let waited = read_until_closed(&mut third, Duration::from_millis(500)).is_none();
        drop(holders);
        let served = read_until_closed(&mut third, Duration::from_secs(20));
        (waited, served)
    })
    .await;
    assert!(waited, "the third client waits while the cap is reached");
    let served =
        String::from_utf8_lossy(&served.expect("served once a place is free")).into_owned();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_its_age_is_closed_after_its_answer() {
    use std::io::Write as _;
    let registry = registry();
    let server = Exporter::new(&registry)
        .address(local())
        .connection_max_age(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let answers = blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // Kept alive, quiet, and closed at its age although the header timeout is 10 s.
        read_until_closed(&mut stream, Duration::from_secs(8))
    })
    .await;
    let answers = String::from_utf8_lossy(&answers.expect("closed at its age")).into_owned();
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 1, "{answers}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_is_served_behind_the_same_authorization_when_enabled() {
    let registry = registry();
    let plain = Exporter::new(&registry)
        .address(local())
        .start()
        .await
        .unwrap();
    let live = Exporter::new(&registry)
        .address(local())
        .bearer_token("s3cret")
        .live(true)
        .start()
        .await
        .unwrap();
    let (plain_addr, live_addr) = (plain.local_addr(), live.local_addr());
    let windows = registry
        .windows()
        .expect("live(true) turned the windows on");
    let responses = blocking(move || {
        // The ticker ticks every second: wait for its second tick, so that one slot is filled.
        std::thread::sleep(Duration::from_millis(2200));
        let auth = ("Authorization", "Bearer s3cret");
        vec![
            get(plain_addr, "/metrics/live", &[]).unwrap(),
            get(live_addr, "/metrics/live", &[]).unwrap(),
            get(live_addr, "/metrics/live", &[auth]).unwrap(),
            get(live_addr, "/metrics/live.json", &[auth]).unwrap(),
            request(live_addr, "POST", "/metrics/live.json", &[auth]).unwrap(),
            get(live_addr, "/metrics/live.jsonx", &[auth]).unwrap(),
        ]
    })
    .await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 401, 200, 200, 405, 404]);
    assert!(responses[2].text().contains("live.json"));
    let json = responses[3].text();
    assert_eq!(
        responses[3].header("content-type"),
        Some("application/json")
    );
    assert!(
        json.starts_with("{\"step\":1.0,\"t\":[") && json.contains("\"routes\":[]"),
        "{json}"
    );
    assert!(
        windows.tracked_series() > 0,
        "the ticker tracks the registry's series"
    );
    plain.shutdown().await;
    live.shutdown().await;
}
