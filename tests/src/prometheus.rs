//! A real Prometheus server for tests: started on 127.0.0.1 with a free port and a temporary
//! data directory, scraping the given targets, stopped and cleaned up when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http;

/// A running Prometheus server.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (as job `vitals`) every `interval`, and waits (at
    /// most 60 s) until it is ready.
    ///
    /// # Panics
    ///
    /// Panics (failing the test) when Prometheus is not installed, naming the install command,
    /// or when it does not become ready.
    #[must_use]
    pub fn start(targets: &[SocketAddr], interval: Duration) -> Self {
        Self::start_with_flags(targets, interval, &[])
    }

    /// As [`start`](Self::start), with more command-line flags (such as
    /// `--enable-feature=exemplar-storage`).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    #[must_use]
    pub fn start_with_flags(targets: &[SocketAddr], interval: Duration, flags: &[&str]) -> Self {
        let binary = crate::require_program(
            "prometheus",
            "apt-get update && apt-get install -y prometheus",
        );
        let addr = free_port();
        let dir = temp_dir("prometheus");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {interval}ms\n  evaluation_interval: {interval}ms\n\
             scrape_configs:\n  - job_name: vitals\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", "),
            interval = interval.as_millis(),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("the config is written");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let server = Self { child, addr, dir };
        let ready = poll(Duration::from_secs(60), || {
            http::get(server.addr, "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
        assert!(
            ready,
            "Prometheus on {addr} did not become ready within 60 s"
        );
        server
    }

    /// The server's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs an instant query and returns each result's labels (as raw JSON text) and value.
    ///
    /// # Panics
    ///
    /// Panics when the server does not answer or the answer is not a success.
    #[must_use]
    pub fn query(&self, promql: &str) -> Vec<(String, f64)> {
        let path = format!("/api/v1/query?query={}", http::encode_query(promql));
        let response = http::get(self.addr, &path, &[]).expect("Prometheus answers");
        let body = response.text();
        assert!(
            response.status == 200 && body.contains("\"status\":\"success\""),
            "query {promql:?} failed: {body}"
        );
        parse_vector(&body)
    }

    /// The exemplars of the series `promql` selects over the last hour, as Prometheus's
    /// `/api/v1/query_exemplars` answers them: the raw JSON body.
    ///
    /// # Panics
    ///
    /// Panics when the server does not answer or the answer is not a success.
    #[must_use]
    pub fn query_exemplars(&self, promql: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            http::encode_query(promql),
            now.saturating_sub(3600),
            now + 60
        );
        let response = http::get(self.addr, &path, &[]).expect("Prometheus answers");
        let body = response.text();
        assert!(
            response.status == 200 && body.contains("\"status\":\"success\""),
            "exemplar query {promql:?} failed: {body}"
        );
        body
    }

    /// Polls `promql` (at most `timeout`) until its first value satisfies `accept`, and returns
    /// the last results seen.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> Vec<(String, f64)> {
        let mut last = Vec::new();
        poll(timeout, || {
            last = self.query(promql);
            last.first().is_some_and(|(_, v)| accept(*v))
        });
        last
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running Pushgateway, stopped when dropped.
#[derive(Debug)]
pub struct PushgatewayServer {
    child: Child,
    addr: SocketAddr,
}

impl PushgatewayServer {
    /// Starts a Pushgateway on a free port of 127.0.0.1 and waits (at most 60 s) until it is
    /// ready.
    ///
    /// # Panics
    ///
    /// Panics (failing the test) when it is not installed, naming the install command, or does
    /// not become ready.
    #[must_use]
    pub fn start() -> Self {
        let binary = crate::require_program(
            "prometheus-pushgateway",
            "apt-get update && apt-get install -y prometheus-pushgateway",
        );
        let addr = free_port();
        let child = Command::new(binary)
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Pushgateway starts");
        let server = Self { child, addr };
        let ready = poll(Duration::from_secs(60), || {
            http::get(server.addr, "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
        assert!(
            ready,
            "the Pushgateway on {addr} did not become ready within 60 s"
        );
        server
    }

    /// The gateway's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for PushgatewayServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Picks a free port on 127.0.0.1 (bound and released; the moment between is a small race
/// that the tests accept).
#[must_use]
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
}

/// A new empty directory under the system's temporary directory.
#[must_use]
pub fn temp_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vitals-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Calls `done` every 100 ms until it says yes or `timeout` passes; returns whether it did.
pub fn poll(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Extracts `(metric, value)` pairs from a vector result: `{"metric":{...},"value":[t,"v"]}`.
fn parse_vector(body: &str) -> Vec<(String, f64)> {
    let mut results = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{\"metric\":") {
        rest = &rest[start + 10..];
        let Some(end) = rest.find("},\"value\":[") else {
            break;
        };
        let metric = rest[..=end].to_owned();
        rest = &rest[end + 11..];
        let value = rest
            .split_once(",\"")
            .and_then(|(_, v)| v.split_once('"'))
            .and_then(|(v, _)| match v {
                "+Inf" => Some(f64::INFINITY),
                "-Inf" => Some(f64::NEG_INFINITY),
                "NaN" => Some(f64::NAN),
                v => v.parse().ok(),
            })
            .unwrap_or(f64::NAN);
        results.push((metric, value));
    }
    results
}

#[cfg(test)]
mod tests {
    #[test]
    fn vector_results_are_parsed() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"vitals"},"value":[1700000000.1,"42"]},{"metric":{},"value":[1700000000.1,"NaN"]}]}}"#;
        let parsed = super::parse_vector(body);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], ("{\"job\":\"vitals\"}".to_owned(), 42.0));
        assert!(parsed[1].1.is_nan());
    }
}
