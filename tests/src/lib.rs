//! Cross-crate and end-to-end tests of vitals live in `tests/`; this library holds what they
//! share: finding the real components (promtool, Prometheus, Pushgateway) and starting them.

pub mod browser;
pub mod http;
pub mod prometheus;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Finds an executable of a real component on `PATH`, or fails the calling test with a message
/// that names the command installing it. A test never passes because a component is missing.
///
/// # Panics
///
/// Panics (failing the test) when the program is not installed.
#[must_use]
pub fn require_program(program: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "`{program}` is not installed; install it with `{install}` \
             (or run `bash .ci/test`, which installs every component the tests use)"
        ),
    }
}

/// Runs `promtool check metrics` on an exposition and returns what it reported: `Ok(())` when
/// it exited successfully and printed no finding, `Err(report)` otherwise.
///
/// # Panics
///
/// Panics (failing the test) when promtool is not installed or cannot be started.
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    let promtool = require_program(
        "promtool",
        "apt-get update && apt-get install -y prometheus",
    );
    let output = run_with_stdin(&promtool, &["check", "metrics"], exposition.as_bytes());
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool exited with {}: {report}", output.status))
    }
}

/// Runs `program` with `args`, writes `stdin` to it and waits for its output.
///
/// # Panics
///
/// Panics (failing the test) when the program cannot be started or read.
#[must_use]
pub fn run_with_stdin(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .unwrap_or_else(|e| panic!("{} does not read its input: {e}", program.display()));
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{} does not finish: {e}", program.display()))
}

/// One sample as an independent Python reader read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The sample name (`requests_total`, `latency_seconds_bucket`, ...).
    pub name: String,
    /// The labels, in the order the parser gave them.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The exemplar's labels and value, when the sample has one (OpenMetrics only).
    pub exemplar: Option<(Vec<(String, String)>, f64)>,
}

impl ParsedSample {
    /// The value of the sample `name` with exactly these labels (in any order).
    #[must_use]
    pub fn find(samples: &[Self], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    /// The samples whose name starts with one of `prefixes`, as comparable values (name,
    /// labels sorted, `le` spelled as the number it names, value bits), sorted: two readers
    /// of the same data give equal lists.
    #[must_use]
    pub fn comparable(samples: &[Self], prefixes: &[&str]) -> Vec<Comparable> {
        let mut out: Vec<Comparable> = samples
            .iter()
            .filter(|s| prefixes.iter().any(|p| s.name.starts_with(p)))
            .map(|s| {
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| match (k.as_str(), v.parse::<f64>()) {
                        ("le", Ok(bound)) => (k.clone(), format!("{bound:?}")),
                        _ => (k.clone(), v.clone()),
                    })
                    .collect();
                labels.sort();
                (s.name.clone(), labels, s.value.to_bits())
            })
            .collect();
        out.sort();
        out
    }
}

/// A sample as [`ParsedSample::comparable`] gives it.
pub type Comparable = (String, Vec<(String, String)>, u64);

/// Prints each sample of the families `families` as `name TAB value TAB labels TAB exemplar`,
/// with label names and values hex-encoded, so that no escaping question can hide a
/// difference between what we wrote and what the parser read.
const PRINT_SAMPLES: &str = r#"
def hexlabels(labels):
    return ",".join(k.encode().hex() + ":" + v.encode().hex() for k, v in labels.items())

def emit(name, value, labels, exemplar=None):
    ex = ""
    if exemplar is not None:
        ex = hexlabels(exemplar.labels) + "=" + repr(float(exemplar.value))
    print(name + "\t" + repr(float(value)) + "\t" + hexlabels(labels) + "\t" + ex)
"#;

/// Parses a Prometheus text exposition (0.0.4) with Python's `prometheus_client`, an
/// independent reader of our output, and returns every sample it read.
///
/// # Panics
///
/// Panics (failing the test) when Python or `prometheus_client` is missing, naming the install
/// command, or when the parser rejects the exposition, with its error.
#[must_use]
pub fn python_parse_text(exposition: &str) -> Vec<ParsedSample> {
    python_samples(
        "from prometheus_client.parser import text_string_to_metric_families as parse",
        "for family in parse(text):\n    for s in family.samples:\n        emit(s.name, s.value, s.labels)",
        exposition,
    )
}

/// Parses an OpenMetrics exposition with `prometheus_client`'s strict OpenMetrics parser
/// (which checks `# EOF`, units, histogram shape, exemplar placement and length, ...).
///
/// # Panics
///
/// As [`python_parse_text`].
#[must_use]
pub fn python_parse_openmetrics(exposition: &str) -> Vec<ParsedSample> {
    python_samples(
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse",
        "for family in parse(text):\n    for s in family.samples:\n        emit(s.name, s.value, s.labels, s.exemplar)",
        exposition,
    )
}

/// Reads our JSON export with Python's `json` module and flattens it into the samples the
/// text formats would show, following the shape documented in `vitals_core::encoding::json`.
///
/// # Panics
///
/// As [`python_parse_text`].
#[must_use]
pub fn python_parse_json(document: &str) -> Vec<ParsedSample> {
    const FLATTEN: &str = r#"
import json
def num(v):
    return float(v) if not isinstance(v, str) else float(v.replace("Inf", "inf"))
doc = json.loads(text)
for fam in doc["metrics"]:
    name, typ = fam["name"], fam["type"]
    for s in fam["samples"]:
        labels = s["labels"]
        if typ == "counter":
            emit(name + "_total", num(s["value"]), labels)
        elif typ == "info":
            emit(name + "_info", num(s["value"]), labels)
        elif typ in ("gauge", "unknown"):
            emit(name, num(s["value"]), labels)
        elif typ == "histogram":
            for b in s["buckets"]:
                le = b["le"] if isinstance(b["le"], str) else repr(float(b["le"]))
                emit(name + "_bucket", num(b["count"]), dict(labels, le=le))
            emit(name + "_count", num(s["count"]), labels)
            emit(name + "_sum", num(s["sum"]), labels)
        elif typ == "summary":
            for q in s["quantiles"]:
                emit(name, num(q["value"]), dict(labels, quantile=repr(float(q["quantile"]))))
            emit(name + "_count", num(s["count"]), labels)
            emit(name + "_sum", num(s["sum"]), labels)
        if "created" in s:
            emit(name + "_created", num(s["created"]), labels)
"#;
    python_samples("", FLATTEN, document)
}

/// Reads a multi-process directory with Python's own `prometheus_client.multiprocess.
/// MultiProcessCollector`, the reference implementation of the format, and returns every
/// sample it reports.
///
/// # Panics
///
/// As [`python_parse_text`], and when Python's collector fails on the directory.
#[must_use]
pub fn python_multiprocess_collect(dir: &Path) -> Vec<ParsedSample> {
    let body = format!(
        "from prometheus_client import CollectorRegistry\n\
         from prometheus_client.multiprocess import MultiProcessCollector\n\
         registry = CollectorRegistry()\n\
         MultiProcessCollector(registry, path={dir:?})\n\
         for family in registry.collect():\n    for s in family.samples:\n        emit(s.name, s.value, s.labels)",
        dir = dir.to_str().expect("a UTF-8 temporary directory"),
    );
    python_samples("import prometheus_client", &body, "")
}

/// Runs a Python script as its own process with `PROMETHEUS_MULTIPROC_DIR` set to `dir`, so
/// that the `prometheus_client` metrics it makes write their values into `dir` as a worker of a
/// multi-process deployment does. `args` become `sys.argv[1..]`; returns what it printed.
///
/// # Panics
///
/// As [`python_parse_text`], and when the script fails.
#[must_use]
pub fn python_multiprocess_worker(dir: &Path, script: &str, args: &[&str]) -> String {
    let python = require_program("python3", "apt-get install -y python3");
    let guarded = format!(
        "import sys\ntry:\n    import prometheus_client\nexcept ImportError:\n    print('MISSING prometheus_client', file=sys.stderr)\n    sys.exit(3)\n{script}\n"
    );
    let output = Command::new(&python)
        .arg("-c")
        .arg(&guarded)
        .args(args)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", python.display()));
    check_python_output(&output);
    String::from_utf8(output.stdout).expect("the worker prints UTF-8")
}

fn python_samples(import: &str, body: &str, input: &str) -> Vec<ParsedSample> {
    let script = format!(
        "import sys\ntry:\n    {import}\nexcept ImportError:\n    print('MISSING prometheus_client', file=sys.stderr)\n    sys.exit(3)\n{PRINT_SAMPLES}\ntext = sys.stdin.buffer.read().decode('utf-8')\n{body}\n",
        import = if import.is_empty() { "pass" } else { import },
    );
    run_python(&script, input.as_bytes())
        .lines()
        .map(parse_sample_line)
        .collect()
}

fn parse_sample_line(line: &str) -> ParsedSample {
    let mut fields = line.split('\t');
    let name = fields.next().unwrap_or_default().to_owned();
    let value = fields
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable value in {line:?}"));
    let labels = unhex_labels(fields.next().unwrap_or_default());
    let exemplar = fields.next().filter(|e| !e.is_empty()).map(|e| {
        let (labels, value) = e.rsplit_once('=').unwrap_or((e, "nan"));
        (unhex_labels(labels), value.parse().unwrap_or(f64::NAN))
    });
    ParsedSample {
        name,
        labels,
        value,
        exemplar,
    }
}

fn unhex_labels(field: &str) -> Vec<(String, String)> {
    field
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once(':').unwrap_or((pair, ""));
            (unhex(k), unhex(v))
        })
        .collect()
}

fn run_python(script: &str, stdin: &[u8]) -> String {
    let python = require_program("python3", "apt-get install -y python3");
    let output = run_with_stdin(&python, &["-c", script], stdin);
    check_python_output(&output);
    String::from_utf8(output.stdout).expect("the reader prints UTF-8")
}

fn check_python_output(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("MISSING prometheus_client"),
        "Python's prometheus_client is not installed; install it with \
         `pip install prometheus_client` (or run `bash .ci/test`)"
    );
    assert!(
        !stderr.contains("MISSING opentelemetry-proto"),
        "Python's opentelemetry-proto is not installed; install it with \
         `pip install opentelemetry-proto` (or run `bash .ci/test`)"
    );
    assert!(
        output.status.success(),
        "the Python reader rejected our output: {stderr}"
    );
}

fn unhex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    String::from_utf8(bytes).expect("the reader gives UTF-8 labels")
}

/// Decodes an OTLP `ExportMetricsServiceRequest` with Python's `opentelemetry-proto` (the
/// project's own generated classes, an independent reader of our hand-written protobuf) and
/// returns it as lines:
///
/// - `resource <key>=<value>`
/// - `metric <name> unit=<unit> kind=<sum|gauge|histogram|summary> [temporality=<n>] [monotonic=<b>]`
/// - `point <metric> {<k>=<v>,...} <fields>`, where fields are `value=`, `start=<bool>`, `count=`,
///   `sum=`, `buckets=[..]`, `bounds=[..]`, `quantiles=[q:v,..]`, `exemplars=[{k=v}:value,..]`.
///
/// # Panics
///
/// Panics (failing the test) when Python or `opentelemetry-proto` is missing, naming the
/// install command, or when the bytes do not decode.
#[must_use]
pub fn python_decode_otlp(body: &[u8]) -> Vec<String> {
    const SCRIPT: &str = r#"
import sys
try:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
except ImportError:
    print("MISSING opentelemetry-proto", file=sys.stderr)
    sys.exit(3)
req = ExportMetricsServiceRequest()
req.ParseFromString(sys.stdin.buffer.read())
def attrs(kvs):
    return "{" + ",".join(f"{kv.key}={kv.value.string_value}" for kv in sorted(kvs, key=lambda kv: kv.key)) + "}"
def exemplars(es):
    def ids(e):
        return f" trace={e.trace_id.hex()} span={e.span_id.hex()}" if e.trace_id or e.span_id else ""
    return "[" + ",".join(f"{attrs(e.filtered_attributes)}:{e.as_double}{ids(e)}" for e in es) + "]"
for rm in req.resource_metrics:
    for kv in rm.resource.attributes:
        print(f"resource {kv.key}={kv.value.string_value}")
    for sm in rm.scope_metrics:
        print(f"scope {sm.scope.name}")
        for m in sm.metrics:
            kind = m.WhichOneof("data")
            extra = ""
            if kind == "sum":
                extra = f" temporality={m.sum.aggregation_temporality} monotonic={m.sum.is_monotonic}"
            if kind == "histogram":
                extra = f" temporality={m.histogram.aggregation_temporality}"
            print(f"metric {m.name} unit={m.unit} kind={kind}{extra}")
            for p in getattr(m, kind).data_points:
                line = f"point {m.name} {attrs(p.attributes)}"
                if kind in ("sum", "gauge"):
                    v = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                    line += f" value={v} start={p.start_time_unix_nano > 0} exemplars={exemplars(p.exemplars)}"
                elif kind == "histogram":
                    line += f" count={p.count} sum={p.sum} buckets={list(p.bucket_counts)} bounds={list(p.explicit_bounds)} start={p.start_time_unix_nano > 0} exemplars={exemplars(p.exemplars)}"
                elif kind == "summary":
                    qs = ",".join(f"{q.quantile}:{round(q.value, 6)}" for q in p.quantile_values)
                    line += f" count={p.count} sum={p.sum} quantiles=[{qs}] start={p.start_time_unix_nano > 0}"
                print(line)
"#;
    run_python(SCRIPT, body)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The README's code blocks, compiled and run as doctests so that they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// vitals-core's crates.io README, run as doctests.
#[doc = include_str!("../../metrics-core/README.md")]
#[cfg(doctest)]
pub struct CoreReadmeDoctests;

/// vitals-macros' crates.io README, run as doctests.
#[doc = include_str!("../../metrics-macros/README.md")]
#[cfg(doctest)]
pub struct MacrosReadmeDoctests;

/// vitals-tower's crates.io README, run as doctests.
#[doc = include_str!("../../metrics-tower/README.md")]
#[cfg(doctest)]
pub struct TowerReadmeDoctests;

/// vitals-actix's crates.io README, run as doctests.
#[doc = include_str!("../../metrics-actix/README.md")]
#[cfg(doctest)]
pub struct ActixReadmeDoctests;
