//! The Grafana dashboards in `deploy/grafana/`: generated from the naming presets
//! (`vitals_core::grafana`), structurally sound (read by Python's own JSON parser), and every
//! panel's query, with its variables substituted, answered with data by a real Prometheus
//! scraping the example app after a known traffic mix.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vitals_core::http::Naming;
use vitals_core::{grafana, ProcessCollector, Registry};
use vitals_tests::http::get;
use vitals_tests::prometheus::PrometheusServer;
use vitals_tests::run_with_stdin;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana")
}

#[test]
fn the_committed_dashboards_are_the_generated_ones() {
    let update = std::env::var_os("VITALS_UPDATE_DASHBOARDS").is_some();
    for (file, json) in grafana::dashboards() {
        let path = deploy_dir().join(file);
        if update {
            std::fs::create_dir_all(deploy_dir()).unwrap();
            std::fs::write(&path, &json).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == json,
            "deploy/grafana/{file} is stale: regenerate it with \
             `VITALS_UPDATE_DASHBOARDS=1 cargo test -p vitals-tests --test dashboards`"
        );
    }
}

/// Checks one dashboard with Python's JSON parser and prints `panel-id<TAB>expr` per target.
const CHECK: &str = r#"
import json, re, sys
board = json.load(sys.stdin)
problems = []
variables = {v["name"]: v for v in board["templating"]["list"]}
if variables.get("datasource", {}).get("type") != "datasource":
    problems.append("no datasource variable")
for name in ("job", "instance"):
    if name not in variables:
        problems.append("no %s variable" % name)
ids = [p["id"] for p in board["panels"]]
if len(ids) != len(set(ids)):
    problems.append("panel ids repeat: %r" % ids)
for v in board["templating"]["list"]:
    if v["type"] == "query" and v["datasource"]["uid"] != "${datasource}":
        problems.append("variable %s has a fixed datasource" % v["name"])
for p in board["panels"]:
    where = "panel %d %r" % (p["id"], p["title"])
    if p["datasource"]["uid"] != "${datasource}":
        problems.append(where + ": fixed datasource")
    if not p.get("description"):
        problems.append(where + ": no description")
    if not p["fieldConfig"]["defaults"].get("unit"):
        problems.append(where + ": no unit")
    if not p["targets"]:
        problems.append(where + ": no query")
    for t in p["targets"]:
        e = t["expr"]
        if t["datasource"]["uid"] != "${datasource}":
            problems.append(where + ": target with a fixed datasource")
        if 'job=~"$job"' not in e or re.search(r'job\s*=\s*"[^$]', e):
            problems.append(where + ": job not from the variable: " + e)
        if 'instance=~"$instance"' not in e:
            problems.append(where + ": instance not from the variable: " + e)
        for window in re.findall(r"\[([^\]]+)\]", e):
            if window != "$__rate_interval":
                problems.append(where + ": a fixed range [" + window + "]")
        for by in re.findall(r"histogram_quantile\([^,]+, sum by \(([^)]*)\)", e):
            if "le" not in [x.strip() for x in by.split(",")]:
                problems.append(where + ": histogram_quantile without le")
        if "_total" in e and "rate(" not in e:
            problems.append(where + ": a counter not under rate(): " + e)
        print("%d\t%s" % (p["id"], e))
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
"#;

/// The queries of one committed dashboard, after the structural checks passed.
fn checked_queries(file: &str) -> Vec<(u32, String)> {
    let json = std::fs::read(deploy_dir().join(file)).unwrap();
    let python = vitals_tests::require_program("python3", "apt-get install python3");
    let out = run_with_stdin(&python, &["-c", CHECK], &json);
    assert!(
        out.status.success(),
        "{file} fails the checks:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (id, expr) = line.split_once('\t').unwrap();
            (id.parse().unwrap(), expr.to_owned())
        })
        .collect()
}

#[test]
fn the_dashboards_pass_the_structural_checks() {
    for (file, _) in grafana::dashboards() {
        let queries = checked_queries(file);
        assert!(queries.len() >= 8, "{file}: {queries:?}");
    }
}

/// An axum app with the OpenTelemetry naming preset, and the process collector.
fn opentelemetry_app(registry: &Registry) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let layer = vitals_tower::MetricsLayer::builder()
        .registry(registry)
        .naming(Naming::OpenTelemetry)
        .build()
        .unwrap();
    axum::Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/items/{id}", get(|| async { "an item\n" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down\n") }),
        )
        .layer(layer)
}

fn send(app: SocketAddr, paths: &[(&str, usize)]) {
    for &(path, times) in paths {
        for _ in 0..times {
            get(app, path, &[]).expect("the app answers");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_data_from_a_real_prometheus() {
    // The example app (Prometheus naming, #[instrumented] functions), and an app with the
    // OpenTelemetry naming; both with the process collector, as the example's main has.
    let _ = axum_app::REGISTRY.register_collector("process", ProcessCollector::new());
    let example = axum_app::app().unwrap();
    let otel_registry = Registry::new();
    otel_registry
        .register_collector("process", ProcessCollector::new())
        .unwrap();
    let otel = opentelemetry_app(&otel_registry);
    let mut addresses = Vec::new();
    for app in [example, otel] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let (example, otel) = (addresses[0], addresses[1]);
    tokio::task::spawn_blocking(move || check_queries(example, otel))
        .await
        .unwrap();
}

fn check_queries(example: SocketAddr, otel: SocketAddr) {
    let prometheus = PrometheusServer::start(&[example, otel], Duration::from_millis(500));
    let mix_example: &[(&str, usize)] = &[
        ("/", 5),
        ("/users/1", 5),
        ("/users/x", 3),
        ("/error", 3),
        ("/slow", 2),
        ("/no/such/page", 2),
    ];
    let mix_otel: &[(&str, usize)] = &[("/", 5), ("/items/3", 5), ("/fail", 3), ("/nope", 2)];
    // Two rounds with scrapes between them, so that `rate()` sees an increase.
    send(example, mix_example);
    send(otel, mix_otel);
    prometheus.wait_for(
        "count(up{job=\"vitals\"} == 1)",
        Duration::from_secs(60),
        |v| v == 2.0,
    );
    std::thread::sleep(Duration::from_secs(2));
    send(example, mix_example);
    send(otel, mix_otel);
    std::thread::sleep(Duration::from_secs(2));
    // Every query must answer with a number (an idle in-flight gauge answers 0, which is data).
    for (file, instance) in [
        ("vitals-overview-prometheus.json", example),
        ("vitals-overview-opentelemetry.json", otel),
        ("vitals-functions.json", example),
    ] {
        for (id, expr) in checked_queries(file) {
            let query = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", "vitals")
                .replace("$instance", &instance.to_string())
                .replace("$route", ".*")
                .replace("$function", ".*");
            assert!(!query.contains('$'), "an unsubstituted variable: {query}");
            let results = prometheus.wait_for(&query, Duration::from_secs(30), |v| {
                v.is_finite() && (v >= 0.0)
            });
            assert!(
                !results.is_empty(),
                "{file} panel {id} returns no data: {query}"
            );
        }
    }
}
