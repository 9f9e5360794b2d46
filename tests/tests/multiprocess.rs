//! Multi-process mode against the reference implementation: directories written by real
//! Python worker processes using `prometheus_client` in multi-process mode, read by vitals'
//! `MultiProcessCollector` and by Python's own, must give the same samples; bad files in the
//! directory are left out and counted, never a panic or a wrong total.

use std::path::{Path, PathBuf};

use vitals_core::encoding::text;
use vitals_core::multiprocess::{mark_process_dead, MultiProcessCollector};
use vitals_core::Registry;
use vitals_tests::{
    python_multiprocess_collect, python_multiprocess_worker, python_parse_text, Comparable,
    ParsedSample,
};

/// A worker: every metric type, labels that need escaping, every gauge mode. `sys.argv[1]`
/// scales the values so that two workers' shares can be told apart; prints its pid.
const WORKER: &str = r#"
import os, sys
from prometheus_client import Counter, Gauge, Histogram, Summary
n = int(sys.argv[1])
requests = Counter("mp_requests", "Requests.", ["route", "method"])
requests.labels("/a", "GET").inc(n)
requests.labels('/b "q"\\ \n ü', "POST").inc(n * 0.25)
if n % 2:
    requests.labels("/only-odd", "GET").inc()
Counter("mp_jobs", "Jobs.").inc(3 * n)
latency = Histogram("mp_latency_seconds", "Latency.", ["route"], buckets=(0.01, 0.1, 1.0))
for i in range(n):
    latency.labels("/a").observe(i * 0.05)
Summary("mp_size_bytes", "Sizes.").observe(n * 10)
for mode in ["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum",
             "mostrecent", "livemostrecent"]:
    Gauge("mp_gauge_" + mode, "Gauge " + mode + ".", ["shard"], multiprocess_mode=mode).labels("x").set(n)
Gauge("mp_in_flight", "In flight.", multiprocess_mode="livesum").inc(n)
print(os.getpid())
"#;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vitals-multiprocess-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two Python worker processes' worth of files; returns their pids.
fn python_workers(dir: &Path) -> [u32; 2] {
    [3, 8].map(|n| {
        python_multiprocess_worker(dir, WORKER, &[&n.to_string()])
            .trim()
            .parse()
            .expect("the worker prints its pid")
    })
}

fn normalized(samples: &[ParsedSample], prefix: &str) -> Vec<Comparable> {
    ParsedSample::comparable(samples, &[prefix])
}

/// What vitals serves for the directory: its text exposition, read by Python's text parser.
fn vitals_scrape(dir: &Path) -> Vec<ParsedSample> {
    let registry = Registry::new();
    registry
        .register_collector("multiprocess", MultiProcessCollector::new(dir).unwrap())
        .unwrap();
    python_parse_text(&text::encode(&registry))
}

fn value(samples: &[ParsedSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    ParsedSample::find(samples, name, labels)
}

#[test]
fn vitals_reads_a_directory_of_python_workers_exactly_as_prometheus_client_does() {
    let dir = TempDir::new("python");
    let [first, second] = python_workers(&dir.0);

    let python = normalized(&python_multiprocess_collect(&dir.0), "mp_");
    let vitals_samples = vitals_scrape(&dir.0);
    let vitals = normalized(&vitals_samples, "mp_");
    assert!(
        python.len() >= 25,
        "the workers wrote too little: {python:?}"
    );
    assert_eq!(vitals, python);

    // The merge itself, not only agreement: sums, per-process series, live sums.
    assert_eq!(
        value(
            &vitals_samples,
            "mp_requests_total",
            &[("route", "/a"), ("method", "GET")]
        ),
        Some(11.0)
    );
    assert_eq!(
        value(
            &vitals_samples,
            "mp_requests_total",
            &[("route", "/only-odd"), ("method", "GET")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&vitals_samples, "mp_jobs_total", &[]), Some(33.0));
    assert_eq!(
        value(
            &vitals_samples,
            "mp_latency_seconds_count",
            &[("route", "/a")]
        ),
        Some(11.0)
    );
    assert_eq!(
        value(
            &vitals_samples,
            "mp_latency_seconds_bucket",
            &[("route", "/a"), ("le", "0.1")]
        ),
        Some(6.0),
        "observations 0.0 and 0.05 from each worker, plus 0.1 exactly: 3 + 3"
    );
    assert_eq!(
        value(&vitals_samples, "mp_size_bytes_sum", &[]),
        Some(110.0)
    );
    assert_eq!(value(&vitals_samples, "mp_in_flight", &[]), Some(11.0));
    assert_eq!(
        value(&vitals_samples, "mp_gauge_max", &[("shard", "x")]),
        Some(8.0)
    );
    assert_eq!(
        value(&vitals_samples, "mp_gauge_min", &[("shard", "x")]),
        Some(3.0)
    );
    assert_eq!(
        value(&vitals_samples, "mp_gauge_mostrecent", &[("shard", "x")]),
        Some(8.0)
    );
    for pid in [first, second] {
        assert!(
            value(
                &vitals_samples,
                "mp_gauge_all",
                &[("shard", "x"), ("pid", &pid.to_string())]
            )
            .is_some(),
            "one `all` series per process, with its pid"
        );
    }

    // A worker that exits is marked dead: its live gauges stop counting, its totals stay.
    assert_eq!(
        mark_process_dead(&dir.0, first).unwrap(),
        5,
        "one file per live gauge mode: liveall, livemin, livemax, livesum, livemostrecent"
    );
    let after = vitals_scrape(&dir.0);
    assert_eq!(
        normalized(&after, "mp_"),
        normalized(&python_multiprocess_collect(&dir.0), "mp_")
    );
    assert_eq!(value(&after, "mp_in_flight", &[]), Some(8.0));
    assert_eq!(
        value(&after, "mp_gauge_livemin", &[("shard", "x")]),
        Some(8.0)
    );
    assert_eq!(value(&after, "mp_gauge_min", &[("shard", "x")]), Some(3.0));
    assert_eq!(value(&after, "mp_jobs_total", &[]), Some(33.0));
    assert!(value(
        &after,
        "mp_gauge_liveall",
        &[("shard", "x"), ("pid", &first.to_string())]
    )
    .is_none());
    assert_eq!(
        mark_process_dead(&dir.0, first).unwrap(),
        0,
        "marking twice removes nothing"
    );
}

#[test]
fn bad_files_are_left_out_and_counted_and_the_rest_is_served_exactly() {
    let dir = TempDir::new("bad");
    python_workers(&dir.0);
    let good = normalized(&vitals_scrape(&dir.0), "mp_");
    assert_eq!(
        good,
        normalized(&python_multiprocess_collect(&dir.0), "mp_")
    );

    let counter_file = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("counter_")
        })
        .unwrap();
    let bytes = std::fs::read(&counter_file).unwrap();
    let bad: [(&str, Vec<u8>); 5] = [
        // A worker's file cut short in the middle of an entry.
        (
            "counter_90001.db",
            bytes[..bytes.len().min(8 + 40)].to_vec(),
        ),
        // The used-length field claims more than the file holds.
        ("histogram_90002.db", {
            let mut b = bytes.clone();
            b[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        // A foreign database that happens to end in .db.
        ("gauge_all_90003.db", b"SQLite format 3\0".repeat(64)),
        // A name prometheus_client never writes.
        ("cache.db", bytes.clone()),
        // An empty file.
        ("summary_90004.db", Vec::new()),
    ];
    for (name, content) in &bad {
        std::fs::write(dir.0.join(name), content).unwrap();
    }
    std::fs::write(
        dir.0.join("README.txt"),
        "not a .db file: not read, not counted",
    )
    .unwrap();

    let scraped = vitals_scrape(&dir.0);
    assert_eq!(normalized(&scraped, "mp_"), good, "the good files, exactly");
    assert_eq!(
        value(
            &scraped,
            "vitals_collector_errors_total",
            &[("collector", "multiprocess")]
        ),
        Some(4.0),
        "every bad .db file but the empty one (an empty file is a worker that has not \
         written yet, as prometheus_client treats it) is counted"
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = TempDir::new("missing");
    let gone = dir.0.join("nope");
    let err = MultiProcessCollector::new(&gone).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let file = dir.0.join("file");
    std::fs::write(&file, "").unwrap();
    let err = MultiProcessCollector::new(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

/// A vitals worker process (`mp-worker`) recording into `dir` in multi-process mode.
struct Worker {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// Its name in the directory's files.
    id: String,
}

impl Worker {
    /// Starts a worker recording the values of scale `n`, and waits until they are written.
    fn start(dir: &Path, n: u32) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mp-worker"));
        command.arg(dir).arg(n.to_string());
        Self::spawn(command)
    }

    /// As [`start`](Self::start), recording into `Registry::global()`, which is to find the
    /// directory in `PROMETHEUS_MULTIPROC_DIR` by itself.
    fn start_global(dir: &Path, n: u32) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mp-worker"));
        command
            .arg("-")
            .arg(n.to_string())
            .env("PROMETHEUS_MULTIPROC_DIR", dir);
        Self::spawn(command)
    }

    fn spawn(mut command: std::process::Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the mp-worker binary starts");
        let stdin = child.stdin.take();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let id = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the worker did not start: {line:?}"))
            .to_owned();
        Self {
            child,
            stdin,
            stdout,
            id,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn command(&mut self, command: &str, end: &str) -> String {
        use std::io::{BufRead, Write};
        let stdin = self.stdin.as_mut().expect("the worker's stdin is open");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        let mut out = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the worker died"
            );
            if line.trim_end() == end {
                return out;
            }
            out.push_str(&line);
        }
    }

    /// What this worker serves at `/metrics`: the merged view of the directory.
    fn scrape(&mut self) -> Vec<ParsedSample> {
        python_parse_text(&self.command("scrape", "END"))
    }

    /// Closes its stdin, which makes it exit normally, and waits for it.
    fn stop(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }

    /// SIGKILL: no destructor, no exit handler runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_reads_what_vitals_processes_write_and_everyone_agrees_through_a_sigkill() {
    let dir = TempDir::new("mixed");
    // A Python worker that has come and gone, and two vitals workers running beside it.
    let python_pid = python_multiprocess_worker(&dir.0, WORKER, &["5"]);
    assert!(!python_pid.trim().is_empty());
    let mut small = Worker::start(&dir.0, 3);
    // The global registry finds the directory in the environment, as prometheus_client does.
    let big = Worker::start_global(&dir.0, 8);
    assert_ne!(small.id, big.id);
    assert_eq!(
        small.id,
        small.pid().to_string(),
        "a fresh pid names its files"
    );

    let python = normalized(&python_multiprocess_collect(&dir.0), "mp_");
    let vitals_samples = vitals_scrape(&dir.0);
    assert!(python.len() >= 25, "too little was written: {python:?}");
    assert_eq!(normalized(&vitals_samples, "mp_"), python);
    // Any worker serves the merged view of all of them.
    let served = small.scrape();
    assert_eq!(normalized(&served, "mp_"), python);

    // The merge, not only agreement: 3 + 8 + 5 of everything.
    let get =
        |samples: &[ParsedSample], name, labels: &[(&str, &str)]| value(samples, name, labels);
    assert_eq!(get(&served, "mp_jobs_total", &[]), Some(48.0));
    assert_eq!(
        get(
            &served,
            "mp_requests_total",
            &[("route", "/a"), ("method", "GET")]
        ),
        Some(16.0)
    );
    assert_eq!(
        get(
            &served,
            "mp_requests_total",
            &[("route", "/only-odd"), ("method", "GET")]
        ),
        Some(2.0),
        "from the workers of odd scale, 3 and 5"
    );
    assert_eq!(
        get(&served, "mp_latency_seconds_count", &[("route", "/a")]),
        Some(16.0)
    );
    assert_eq!(get(&served, "mp_size_bytes_sum", &[]), Some(160.0));
    assert_eq!(get(&served, "mp_in_flight", &[]), Some(16.0));
    assert_eq!(get(&served, "mp_gauge_max", &[("shard", "x")]), Some(8.0));
    assert_eq!(
        get(&served, "mp_gauge_livemin", &[("shard", "x")]),
        Some(3.0)
    );
    for id in [&small.id, &big.id] {
        assert!(
            get(&served, "mp_gauge_all", &[("shard", "x"), ("pid", id)]).is_some(),
            "one `all` series per process, named by its id"
        );
    }

    // SIGKILL the big worker: nothing of it runs again, yet its live gauges stop counting
    // at the next scrape, and its totals stay.
    let big_id = big.id.clone();
    big.kill();
    let after = small.scrape();
    assert_eq!(
        get(&after, "mp_in_flight", &[]),
        Some(8.0),
        "3 + Python's 5"
    );
    assert_eq!(
        get(&after, "mp_gauge_livemax", &[("shard", "x")]),
        Some(5.0)
    );
    assert_eq!(get(&after, "mp_gauge_max", &[("shard", "x")]), Some(8.0));
    assert_eq!(
        get(&after, "mp_jobs_total", &[]),
        Some(48.0),
        "totals never go back"
    );
    assert!(get(
        &after,
        "mp_gauge_liveall",
        &[("shard", "x"), ("pid", &big_id)]
    )
    .is_none());
    assert!(get(&after, "mp_gauge_all", &[("shard", "x"), ("pid", &big_id)]).is_none());
    // Its files are folded into the archives: the scrape reads no more files than before.
    let files: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !files.iter().any(|f| f.contains(&big_id)),
        "the dead worker's files are gone: {files:?}"
    );
    assert!(files.iter().any(|f| f == "counter_archive.db"), "{files:?}");
    // The dead worker's live files are gone, so Python's collector agrees too.
    assert_eq!(
        normalized(&after, "mp_"),
        normalized(&python_multiprocess_collect(&dir.0), "mp_")
    );

    // A restarted worker adds to the totals instead of resetting them.
    let mut restarted = Worker::start(&dir.0, 8);
    assert_ne!(restarted.id, big_id);
    assert_eq!(restarted.command("inc", "OK"), "");
    let again = restarted.scrape();
    assert_eq!(get(&again, "mp_jobs_total", &[]), Some(48.0 + 24.0 + 1.0));
    assert_eq!(get(&again, "mp_in_flight", &[]), Some(16.0));
    restarted.stop();
    small.stop();
    assert_eq!(
        get(&vitals_scrape(&dir.0), "mp_in_flight", &[]),
        Some(5.0),
        "workers that exit stop counting too; Python's worker was never marked dead"
    );

    // Every vitals process is gone: the next one to start is a new run, and the vitals
    // files of the old one are cleared; prometheus_client's are left alone.
    let fresh = Worker::start(&dir.0, 1);
    let samples = vitals_scrape(&dir.0);
    assert_eq!(get(&samples, "mp_jobs_total", &[]), Some(15.0 + 3.0));
    assert_eq!(
        normalized(&samples, "mp_"),
        normalized(&python_multiprocess_collect(&dir.0), "mp_")
    );
    fresh.stop();
}

#[test]
fn compaction_under_concurrent_scrapes_never_shows_a_total_going_down() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = TempDir::new("compaction");
    // One worker stays up throughout, so that the directory is one run.
    let anchor = Worker::start(&dir.0, 2);
    let done = Arc::new(AtomicBool::new(false));
    let scrapers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, done) = (dir.0.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let collector = MultiProcessCollector::new(&dir).unwrap();
                let registry = Registry::new();
                registry.register_collector("mp", collector).unwrap();
                let (mut last, mut scrapes) = (0.0, 0u32);
                while !done.load(Ordering::Acquire) {
                    let jobs = registry
                        .get_sample_value("mp_jobs_total", &[])
                        .unwrap_or(0.0);
                    assert!(jobs >= last, "mp_jobs_total went from {last} to {jobs}");
                    last = jobs;
                    scrapes += 1;
                }
                scrapes
            })
        })
        .collect();
    // Twelve workers come and go, half of them killed; each adds 3 × 1 jobs.
    for i in 0..12 {
        let worker = Worker::start(&dir.0, 1);
        if i % 2 == 0 {
            worker.kill();
        } else {
            worker.stop();
        }
    }
    done.store(true, Ordering::Release);
    for scraper in scrapers {
        assert!(scraper.join().expect("no scraper saw a total go down") > 0);
    }
    let samples = vitals_scrape(&dir.0);
    assert_eq!(
        value(&samples, "mp_jobs_total", &[]),
        Some(6.0 + 12.0 * 3.0)
    );
    assert_eq!(
        value(&samples, "mp_in_flight", &[]),
        Some(2.0),
        "the anchor's only"
    );
    assert_eq!(
        normalized(&samples, "mp_"),
        normalized(&python_multiprocess_collect(&dir.0), "mp_")
    );
    // The anchor's 13 files, the archives, and no more: scrape time stays bounded.
    let db_files = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "db")
        })
        .count();
    assert!(db_files <= 13 + 8, "{db_files} files");
    anchor.stop();
}

#[test]
fn a_directory_that_cannot_be_written_is_a_clear_error_at_startup() {
    let dir = TempDir::new("unwritable");
    let file = dir.0.join("a-file");
    std::fs::write(&file, "").unwrap();
    // A directory that cannot be made (its parent is a file; root ignores permissions, so
    // a read-only directory would not do).
    let inside = file.join("metrics");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mp-worker"))
        .arg(&inside)
        .arg("1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("multi-process directory") && stderr.contains(&*inside.to_string_lossy()),
        "{stderr}"
    );
}
