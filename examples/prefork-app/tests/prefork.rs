//! The pre-fork example as its users run it: a supervisor and real worker processes on one
//! port. A known mix of requests, every worker SIGKILLed in the middle while requests are in
//! flight, the same mix again to the restarted workers: whichever worker answers `/metrics`
//! must report exactly what was sent and answered, in-flight back at zero, and agree with
//! prometheus_client's own reading of the directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use vitals_tests::http::{get, request};
use vitals_tests::prometheus::{free_port, temp_dir};
use vitals_tests::{python_multiprocess_collect, python_parse_text, Comparable, ParsedSample};

struct Supervisor {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Supervisor {
    /// The next line the supervisor prints.
    fn line(&mut self) -> String {
        let mut line = String::new();
        assert!(
            self.stdout.read_line(&mut line).unwrap() > 0,
            "the supervisor exited"
        );
        line
    }

    /// Reads lines until `n` workers have started; returns their pids.
    fn started(&mut self, n: usize) -> Vec<u32> {
        let mut pids = Vec::new();
        while pids.len() < n {
            let line = self.line();
            if let Some(pid) = line
                .strip_prefix("worker ")
                .and_then(|l| l.strip_suffix(" started\n"))
            {
                pids.push(pid.parse().unwrap());
            }
        }
        pids
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // SIGTERM: it stops its workers and exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

/// Waits until a worker answers.
fn wait_up(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(addr, "/", &[]).map(|r| r.status).ok() != Some(200) {
        assert!(Instant::now() < deadline, "no worker answers on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The mix, from 8 threads on new connections (so the kernel spreads them over the
/// workers): per thread 10 found users, 5 unknown ones, 5 orders and 2 errors.
fn send_mix(addr: SocketAddr) {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for i in 0..22 {
                    let (method, path, status) = match i {
                        0..10 => ("GET", "/users/42", 200),
                        10..15 => ("GET", "/users/abc", 404),
                        15..20 => ("POST", "/orders", 201),
                        _ => ("GET", "/error", 500),
                    };
                    let response = request(addr, method, path, &[("content-length", "0")])
                        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                    assert_eq!(response.status, status, "{method} {path}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

fn value(samples: &[ParsedSample], name: &str, labels: &[(&str, &str)]) -> f64 {
    ParsedSample::find(samples, name, labels).unwrap_or(0.0)
}

fn normalized(samples: &[ParsedSample]) -> Vec<Comparable> {
    ParsedSample::comparable(samples, &["http_", "function_", "orders_"])
}

/// The same series on both sides, with the same values: counts exactly, sums to the last
/// bits (Python adds the processes' shares in another order).
fn assert_same(ours: &[Comparable], python: &[Comparable]) {
    let series = |v: &[Comparable]| {
        v.iter()
            .map(|(n, l, _)| (n.clone(), l.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(series(ours), series(python), "the same series");
    for ((name, labels, a), (_, _, b)) in ours.iter().zip(python) {
        let (a, b) = (f64::from_bits(*a), f64::from_bits(*b));
        let close = if name.ends_with("_sum") {
            (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
        } else {
            a == b
        };
        assert!(close, "{name}{labels:?}: {a} here, {b} in Python");
    }
}

#[test]
fn every_axum_worker_serves_the_merged_totals_through_sigkills_and_restarts() {
    merged_totals_through_sigkills_and_restarts("axum", "axum_app");
}

#[test]
fn every_actix_worker_serves_the_merged_totals_through_sigkills_and_restarts() {
    merged_totals_through_sigkills_and_restarts("actix", "actix_app");
}

/// The scenario with workers serving `app`, whose `#[instrumented]` functions are in
/// `module`.
fn merged_totals_through_sigkills_and_restarts(app: &str, module: &str) {
    let dir = temp_dir("prefork");
    let addr = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prefork-app"))
        .env("APP", app)
        .env("WORKERS", "3")
        .env("LISTEN", addr.to_string())
        .env("PROMETHEUS_MULTIPROC_DIR", &dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("prefork-app starts");
    let mut supervisor = Supervisor {
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    };
    let workers = supervisor.started(3);
    wait_up(addr);
    send_mix(addr);

    // Requests in flight on every worker, then every worker SIGKILLed under them.
    let streams: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || get(addr, "/stream", &[]).map(|r| r.status)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(addr, "/metrics", &[]).unwrap().text();
        let samples = python_parse_text(&text);
        let in_flight = value(
            &samples,
            "http_requests_in_flight",
            &[("method", "GET"), ("route", "/stream")],
        );
        // At least two at once, so that the kill below finds requests in flight (how many
        // of the six have started varies: each is a new connection).
        if in_flight >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the streams never were in flight: {in_flight}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in &workers {
        kill(*pid);
    }
    for stream in streams {
        let _ = stream.join().unwrap();
    }
    let restarted = supervisor.started(3);
    assert!(restarted.iter().all(|pid| !workers.contains(pid)));
    wait_up(addr);
    send_mix(addr);

    // Several scrapes, so that several workers answer; each sees everything.
    let mut answered_by_python = None;
    for _ in 0..6 {
        let samples = python_parse_text(&get(addr, "/metrics", &[]).unwrap().text());
        let requests = |method, route, status| {
            value(
                &samples,
                "http_requests_total",
                &[("method", method), ("route", route), ("status", status)],
            )
        };
        assert_eq!(requests("GET", "/users/{id}", "200"), 160.0);
        assert_eq!(requests("GET", "/users/{id}", "404"), 80.0);
        assert_eq!(requests("POST", "/orders", "201"), 80.0);
        assert_eq!(requests("GET", "/error", "500"), 32.0);
        assert_eq!(value(&samples, "orders_placed_total", &[]), 80.0);
        assert_eq!(
            value(
                &samples,
                "function_calls_total",
                &[
                    ("function", "find_user"),
                    ("module", module),
                    ("result", "error")
                ]
            ),
            80.0,
            "#[instrumented] records into the same files: {:?}",
            samples
                .iter()
                .filter(|s| s.name.starts_with("function_calls_total"))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            value(
                &samples,
                "http_request_duration_seconds_count",
                &[
                    ("method", "GET"),
                    ("route", "/users/{id}"),
                    ("status", "200")
                ]
            ),
            160.0
        );
        for route in ["/stream", "/users/{id}", "/error"] {
            assert_eq!(
                value(
                    &samples,
                    "http_requests_in_flight",
                    &[("method", "GET"), ("route", route)]
                ),
                0.0,
                "in flight on {route} after the killed workers"
            );
        }
        assert_eq!(value(&samples, "prefork_worker_restarts_total", &[]), 3.0);
        answered_by_python.get_or_insert(samples);
    }
    assert_same(
        &normalized(&answered_by_python.unwrap()),
        &normalized(&python_multiprocess_collect(&dir)),
    );
    drop(supervisor);
    let _ = std::fs::remove_dir_all(&dir);
}
