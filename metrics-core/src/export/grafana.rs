//! Grafana dashboards for the metrics vitals records, generated from the same naming presets
//! the recorder registers, so that a renamed metric cannot leave a dashboard querying
//! nothing. The repository's `deploy/grafana/` holds their output, and a test fails when
//! those files differ from what this module generates.
//!
//! - [`overview`]: a service overview for one [`Naming`] preset: request rate, error ratios
//!   (5xx, and 4xx apart), latency percentiles, in-flight requests, per route and method,
//!   and the process's CPU and memory.
//! - [`functions`]: the calls, error ratio, latency and concurrency of `#[instrumented]`
//!   functions (the same names under both presets).
//!
//! Each board has a datasource variable (no datasource is hard-coded), `job`, `instance` and
//! `route` (or `function`) variables that every query filters on, `$__rate_interval` in every
//! rate, a unit and a description on every panel.
//!
//! Import one in Grafana with *Dashboards → New → Import*, then pick the Prometheus data
//! source in the board's *Data source* variable.
//!
//! ```
//! use vitals_core::{grafana, http::Naming};
//!
//! let board = grafana::overview(Naming::Prometheus);
//! assert!(board.contains("http_requests_total"));
//! for (file, json) in grafana::dashboards() {
//!     assert!(file.ends_with(".json") && json.starts_with('{'));
//! }
//! ```

use std::fmt::Write as _;

use crate::http::Naming;
use crate::instrumented::{CALLS_TOTAL, CONCURRENT, DURATION};

/// Every dashboard, with the file name `deploy/grafana/` keeps it under.
#[must_use]
pub fn dashboards() -> Vec<(&'static str, String)> {
    vec![
        (
            "vitals-overview-prometheus.json",
            overview(Naming::Prometheus),
        ),
        (
            "vitals-overview-opentelemetry.json",
            overview(Naming::OpenTelemetry),
        ),
        ("vitals-functions.json", functions()),
    ]
}

/// The service overview for the HTTP metrics of `naming`.
#[must_use]
pub fn overview(naming: Naming) -> String {
    let schema = naming.schema();
    let labels = schema.duration.labels;
    let (method, route, status) = (labels[0], labels[1], labels[2]);
    let duration = format!("{}_seconds", schema.duration.name);
    let requests = match &schema.requests {
        Some(spec) => format!("{}_total", spec.name),
        None => format!("{duration}_count"),
    };
    let bucket = format!("{duration}_bucket");
    let in_flight = schema.in_flight.name;
    let (preset, uid) = match naming {
        Naming::Prometheus => ("Prometheus naming", "vitals-overview-prometheus"),
        Naming::OpenTelemetry => ("OpenTelemetry naming", "vitals-overview-otel"),
    };
    let sel = format!("job=~\"$job\", instance=~\"$instance\", {route}=~\"$route\"");
    let rate =
        |metric: &str, extra: &str| format!("rate({metric}{{{sel}{extra}}}[$__rate_interval])");
    let all = rate(&requests, "");
    let failed = rate(&requests, &format!(", {status}=~\"5..\""));
    let client = rate(&requests, &format!(", {status}=~\"4..\""));
    let by = format!("{route}, {method}");
    let quantile = |q: &str, group: &str| {
        format!(
            "histogram_quantile({q}, sum by (le{group}) ({}))",
            rate(&bucket, "")
        )
    };
    let legend = format!("{{{{{method}}}}} {{{{{route}}}}}");
    let panels = vec![
        stat(
            "Request rate",
            "Requests finished per second, all routes.",
            "reqps",
            &format!("sum({all})"),
        ),
        stat(
            "Error ratio",
            "Share of requests answered with a 5xx status.",
            "percentunit",
            &format!("sum({failed}) / sum({all})"),
        ),
        stat(
            "p99 latency",
            "99th percentile time to serve a request, until its body ended.",
            "s",
            &quantile("0.99", ""),
        ),
        stat(
            "In flight",
            "Requests being served now.",
            "short",
            &format!("sum({in_flight}{{{sel}}})"),
        ),
        series(
            "Traffic by route",
            "Requests finished per second, per route and method.",
            "reqps",
            &[(format!("sum by ({by}) ({all})"), legend.clone())],
        ),
        series(
            "Server errors by route",
            "Share of each route's requests answered with a 5xx status.",
            "percentunit",
            &[(
                format!("sum by ({by}) ({failed}) / sum by ({by}) ({all})"),
                legend.clone(),
            )],
        ),
        series(
            "Latency percentiles",
            "p50, p90 and p99 of the time to serve a request, all routes.",
            "s",
            &[
                (quantile("0.5", ""), "p50".to_owned()),
                (quantile("0.9", ""), "p90".to_owned()),
                (quantile("0.99", ""), "p99".to_owned()),
            ],
        ),
        series(
            "p99 latency by route",
            "99th percentile time to serve a request, per route and method.",
            "s",
            &[(quantile("0.99", &format!(", {by}")), legend.clone())],
        ),
        series(
            "In flight by route",
            "Requests being served, per route and method (saturation).",
            "short",
            &[(
                format!("sum by ({by}) ({in_flight}{{{sel}}})"),
                legend.clone(),
            )],
        ),
        series(
            "Client errors by route",
            "Share of each route's requests answered with a 4xx status.",
            "percentunit",
            &[(
                format!("sum by ({by}) ({client}) / sum by ({by}) ({all})"),
                legend,
            )],
        ),
        series(
            "Process CPU",
            "CPU seconds the process used per second (the process collector's).",
            "percentunit",
            &[(
                "sum by (instance) (rate(process_cpu_seconds_total{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))"
                    .to_owned(),
                "{{instance}}".to_owned(),
            )],
        ),
        series(
            "Process memory",
            "Resident memory of the process (the process collector's).",
            "bytes",
            &[(
                "sum by (instance) (process_resident_memory_bytes{job=~\"$job\", instance=~\"$instance\"})"
                    .to_owned(),
                "{{instance}}".to_owned(),
            )],
        ),
    ];
    board(
        &format!("vitals · service overview ({preset})"),
        uid,
        "Golden signals of a service recorded by vitals: traffic, errors, latency and saturation, per route and method.",
        &requests,
        &[("route", route, "Route")],
        panels,
    )
}

/// The board of `#[instrumented]` functions.
#[must_use]
pub fn functions() -> String {
    let bucket = format!("{DURATION}_bucket");
    let sel = "job=~\"$job\", instance=~\"$instance\", function=~\"$function\"";
    let rate =
        |metric: &str, extra: &str| format!("rate({metric}{{{sel}{extra}}}[$__rate_interval])");
    let all = rate(CALLS_TOTAL, "");
    let failed = rate(CALLS_TOTAL, ", result=\"error\"");
    let by = "function, module";
    let quantile = |q: &str, group: &str| {
        format!(
            "histogram_quantile({q}, sum by (le{group}) ({}))",
            rate(&bucket, "")
        )
    };
    let legend = "{{function}} ({{module}})".to_owned();
    let panels = vec![
        stat(
            "Call rate",
            "Calls finished per second, all instrumented functions.",
            "reqps",
            &format!("sum({all})"),
        ),
        stat(
            "Error ratio",
            "Share of calls that returned an error.",
            "percentunit",
            &format!("sum({failed}) / sum({all})"),
        ),
        stat(
            "p99 latency",
            "99th percentile call duration.",
            "s",
            &quantile("0.99", ""),
        ),
        stat(
            "Concurrent calls",
            "Calls in progress now.",
            "short",
            &format!("sum({CONCURRENT}{{{sel}}})"),
        ),
        series(
            "Calls by function",
            "Calls finished per second, per function.",
            "reqps",
            &[(format!("sum by ({by}) ({all})"), legend.clone())],
        ),
        series(
            "Error ratio by function",
            "Share of each function's calls that returned an error.",
            "percentunit",
            &[(
                format!("sum by ({by}) ({failed}) / sum by ({by}) ({all})"),
                legend.clone(),
            )],
        ),
        series(
            "p50 latency by function",
            "Median call duration, per function.",
            "s",
            &[(quantile("0.5", &format!(", {by}")), legend.clone())],
        ),
        series(
            "p99 latency by function",
            "99th percentile call duration, per function.",
            "s",
            &[(quantile("0.99", &format!(", {by}")), legend.clone())],
        ),
        series(
            "Concurrent calls by function",
            "Calls in progress, per function.",
            "short",
            &[(format!("sum by ({by}) ({CONCURRENT}{{{sel}}})"), legend)],
        ),
    ];
    board(
        "vitals · functions",
        "vitals-functions",
        "Calls, errors, latency and concurrency of functions instrumented with #[instrumented].",
        CALLS_TOTAL,
        &[("function", "function", "Function")],
        panels,
    )
}

/// A JSON value, written with two-space indentation so that the files diff well.
enum Json {
    Bool(bool),
    Num(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

fn s(v: impl Into<String>) -> Json {
    Json::Str(v.into())
}

impl Json {
    fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, depth: usize| {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', depth * 2));
        };
        match self {
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Str(v) => crate::util::fmt::json_string(out, v, false),
            Self::Arr(items) if items.is_empty() => out.push_str("[]"),
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    item.write(out, depth + 1);
                }
                pad(out, depth);
                out.push(']');
            }
            Self::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            Self::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    crate::util::fmt::json_string(out, key, false);
                    out.push_str(": ");
                    value.write(out, depth + 1);
                }
                pad(out, depth);
                out.push('}');
            }
        }
    }
}

fn datasource() -> Json {
    Json::Obj(vec![("type", s("prometheus")), ("uid", s("${datasource}"))])
}

/// A panel before its id and position are given.
struct Panel {
    kind: &'static str,
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    targets: Vec<(String, String)>,
}

fn stat(title: &'static str, description: &'static str, unit: &'static str, expr: &str) -> Panel {
    Panel {
        kind: "stat",
        title,
        description,
        unit,
        targets: vec![(expr.to_owned(), String::new())],
    }
}

fn series(
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    targets: &[(String, String)],
) -> Panel {
    Panel {
        kind: "timeseries",
        title,
        description,
        unit,
        targets: targets.to_vec(),
    }
}

impl Panel {
    fn json(self, id: i64, (x, y, w, h): (i64, i64, i64, i64)) -> Json {
        let targets = self
            .targets
            .into_iter()
            .zip('A'..)
            .map(|((expr, legend), ref_id)| {
                let mut fields = vec![
                    ("datasource", datasource()),
                    ("expr", s(expr)),
                    ("refId", s(ref_id.to_string())),
                ];
                if !legend.is_empty() {
                    fields.push(("legendFormat", s(legend)));
                }
                Json::Obj(fields)
            })
            .collect();
        let options = if self.kind == "stat" {
            Json::Obj(vec![
                ("colorMode", s("value")),
                ("graphMode", s("area")),
                (
                    "reduceOptions",
                    Json::Obj(vec![
                        ("calcs", Json::Arr(vec![s("lastNotNull")])),
                        ("fields", s("")),
                        ("values", Json::Bool(false)),
                    ]),
                ),
            ])
        } else {
            Json::Obj(vec![
                (
                    "legend",
                    Json::Obj(vec![
                        ("displayMode", s("list")),
                        ("placement", s("bottom")),
                        ("showLegend", Json::Bool(true)),
                    ]),
                ),
                (
                    "tooltip",
                    Json::Obj(vec![("mode", s("multi")), ("sort", s("desc"))]),
                ),
            ])
        };
        Json::Obj(vec![
            ("id", Json::Num(id)),
            ("type", s(self.kind)),
            ("title", s(self.title)),
            ("description", s(self.description)),
            ("datasource", datasource()),
            (
                "gridPos",
                Json::Obj(vec![
                    ("x", Json::Num(x)),
                    ("y", Json::Num(y)),
                    ("w", Json::Num(w)),
                    ("h", Json::Num(h)),
                ]),
            ),
            (
                "fieldConfig",
                Json::Obj(vec![
                    ("defaults", Json::Obj(vec![("unit", s(self.unit))])),
                    ("overrides", Json::Arr(Vec::new())),
                ]),
            ),
            ("options", options),
            ("targets", Json::Arr(targets)),
        ])
    }
}

/// A query variable over the values of `label` in `metric`, filtered by the variables before
/// it, with an *All* choice that matches everything.
fn variable(name: &str, label: &str, metric: &str, filter: &str, title: &str) -> Json {
    let query = if filter.is_empty() {
        format!("label_values({metric}, {label})")
    } else {
        format!("label_values({metric}{{{filter}}}, {label})")
    };
    Json::Obj(vec![
        ("name", s(name)),
        ("label", s(title)),
        ("type", s("query")),
        ("datasource", datasource()),
        ("definition", s(query.clone())),
        (
            "query",
            Json::Obj(vec![
                ("query", s(query)),
                ("refId", s(format!("{name}-values"))),
            ]),
        ),
        ("refresh", Json::Num(2)),
        ("sort", Json::Num(1)),
        ("includeAll", Json::Bool(true)),
        ("multi", Json::Bool(true)),
        ("allValue", s(".*")),
        (
            "current",
            Json::Obj(vec![
                ("text", Json::Arr(vec![s("All")])),
                ("value", Json::Arr(vec![s("$__all")])),
            ]),
        ),
    ])
}

fn board(
    title: &str,
    uid: &str,
    description: &str,
    metric: &str,
    extra: &[(&str, &str, &str)],
    panels: Vec<Panel>,
) -> String {
    let mut vars = vec![
        Json::Obj(vec![
            ("name", s("datasource")),
            ("label", s("Data source")),
            ("type", s("datasource")),
            ("query", s("prometheus")),
            ("refresh", Json::Num(1)),
            ("current", Json::Obj(Vec::new())),
        ]),
        variable("job", "job", metric, "", "Job"),
        variable("instance", "instance", metric, "job=~\"$job\"", "Instance"),
    ];
    for &(name, label, title) in extra {
        vars.push(variable(
            name,
            label,
            metric,
            "job=~\"$job\", instance=~\"$instance\"",
            title,
        ));
    }
    // Stats in a row of four, then charts two by two.
    let mut laid = Vec::new();
    let (mut stats, mut charts) = (0, 0);
    for (id, panel) in (1..).zip(panels) {
        let place = if panel.kind == "stat" {
            stats += 1;
            ((stats - 1) * 6, 0, 6, 4)
        } else {
            charts += 1;
            (((charts - 1) % 2) * 12, 4 + ((charts - 1) / 2) * 8, 12, 8)
        };
        laid.push(panel.json(id, place));
    }
    let dashboard = Json::Obj(vec![
        ("title", s(title)),
        ("uid", s(uid)),
        ("description", s(description)),
        ("tags", Json::Arr(vec![s("vitals")])),
        ("editable", Json::Bool(true)),
        ("graphTooltip", Json::Num(1)),
        ("schemaVersion", Json::Num(39)),
        ("version", Json::Num(1)),
        ("refresh", s("30s")),
        ("timezone", s("browser")),
        (
            "time",
            Json::Obj(vec![("from", s("now-1h")), ("to", s("now"))]),
        ),
        ("templating", Json::Obj(vec![("list", Json::Arr(vars))])),
        (
            "annotations",
            Json::Obj(vec![("list", Json::Arr(Vec::new()))]),
        ),
        ("links", Json::Arr(Vec::new())),
        ("panels", Json::Arr(laid)),
    ]);
    let mut out = String::new();
    dashboard.write(&mut out, 0);
    out.push('\n');
    out
}
