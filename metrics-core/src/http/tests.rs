use super::guard::{Target, NO_STATUS};
use super::method::{method_index, METHODS};
use super::*;
use crate::error::Error;
use crate::http::route::UNMATCHED_ROUTE;
use crate::metric::Buckets;
use crate::registry::Registry;

/// The label a method gets.
fn normalize_method(method: &str) -> &'static str {
    METHODS[usize::from(method_index(method))]
}

fn route(r: &str) -> Option<&str> {
    Some(r)
}

fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    registry.get_sample_value(name, labels)
}

#[test]
fn the_guard_stays_small_because_it_moves_with_every_response() {
    // The guard is moved with the response future and into the body, several times per
    // request: what only some requests need lives out of line.
    assert!(std::mem::size_of::<RequestGuard>() <= 40);
    assert_eq!(
        std::mem::size_of::<Option<RequestGuard>>(),
        std::mem::size_of::<RequestGuard>()
    );
}

#[test]
fn standard_methods_stay_and_others_become_other() {
    for m in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ] {
        assert_eq!(normalize_method(m), m);
    }
    for m in ["get", "PROPFIND", "", "G\u{0}T", "🚀", "QUERY"] {
        assert_eq!(normalize_method(m), "_OTHER", "{m:?}");
    }
}

#[test]
fn every_ending_is_counted_once_and_in_flight_returns_to_zero() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    let r = "/items/{id}";

    let mut done = metrics.start("GET", route(r));
    assert_eq!(
        value(
            &registry,
            "http_requests_in_flight",
            &[("method", "GET"), ("route", r)]
        ),
        Some(1.0)
    );
    done.response(200);
    done.finish();

    drop(metrics.start("GET", route(r))); // the client went away before the response

    let mut cut = metrics.start("GET", route(r));
    cut.response(206);
    drop(cut); // the client went away during the body

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut guard = metrics.start("GET", route(r));
        guard.response(200); // headers were ready, then the body's handler panicked
        panic!("handler bug");
    }));
    assert!(panicked.is_err());

    let total = |status| {
        value(
            &registry,
            "http_requests_total",
            &[("method", "GET"), ("route", r), ("status", status)],
        )
    };
    assert_eq!(total("200"), Some(1.0));
    assert_eq!(total("499"), Some(1.0));
    assert_eq!(total("206"), Some(1.0));
    assert_eq!(total("500"), Some(1.0), "the panic");
    let latency_count = |status| {
        value(
            &registry,
            "http_request_duration_seconds_count",
            &[("method", "GET"), ("route", r), ("status", status)],
        )
    };
    assert_eq!(latency_count("499"), Some(1.0));
    assert_eq!(latency_count("500"), Some(1.0));
    assert_eq!(
        value(
            &registry,
            "http_requests_in_flight",
            &[("method", "GET"), ("route", r)]
        ),
        Some(0.0)
    );
}

#[test]
fn remembered_series_stay_right_across_statuses_removals_and_overflow() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    // More statuses than a route remembers, interleaved, many times each.
    let statuses = [200_u16, 404, 500, 503, 201, 302, 200, 404];
    for _ in 0..50 {
        for &status in &statuses {
            let mut guard = metrics.start("GET", route("/r"));
            guard.response(status);
            guard.finish();
        }
    }
    for (status, expected) in [(200, 100.0), (404, 100.0), (500, 50.0), (302, 50.0)] {
        let code = status.to_string();
        let labels = [
            ("method", "GET"),
            ("route", "/r"),
            ("status", code.as_str()),
        ];
        assert_eq!(
            value(&registry, "http_requests_total", &labels),
            Some(expected)
        );
        assert_eq!(
            value(&registry, "http_request_duration_seconds_count", &labels),
            Some(expected)
        );
    }

    // The family is cleared: the next request brings its series back, not lost.
    metrics.shared[0].requests.as_ref().unwrap().clear();
    let mut guard = metrics.start("GET", route("/r"));
    guard.response(200);
    guard.finish();
    let ok = [("method", "GET"), ("route", "/r"), ("status", "200")];
    assert_eq!(value(&registry, "http_requests_total", &ok), Some(1.0));

    // Requests redirected to the overflow series are counted each time.
    let small = Registry::new();
    let capped = HttpMetrics::builder(&small).series_cap(1).build().unwrap();
    for path in ["/a", "/b", "/b", "/b"] {
        let mut guard = capped.start("GET", route(path));
        guard.response(200);
        guard.finish();
    }
    let overflow = [
        ("method", "__overflow__"),
        ("route", "__overflow__"),
        ("status", "__overflow__"),
    ];
    assert_eq!(value(&small, "http_requests_total", &overflow), Some(3.0));
    assert_eq!(
        value(
            &small,
            "vitals_series_overflow_total",
            &[("metric", "http_requests")]
        ),
        Some(3.0)
    );
}

#[test]
fn the_recorders_families_cannot_be_registered_again_as_plain_metrics() {
    let registry = Registry::new();
    let _metrics = HttpMetrics::builder(&registry).build().unwrap();
    let errors = [
        registry
            .gauge("http_requests_in_flight", "HTTP requests being served.")
            .label_names(["method", "route"])
            .register()
            .unwrap_err(),
        registry
            .counter("http_requests", "HTTP requests served.")
            .label_names(["method", "route", "status"])
            .register()
            .unwrap_err(),
        registry
            .histogram(
                "http_request_duration",
                "Time to serve HTTP requests, until the response body ended.",
            )
            .unit("seconds")
            .label_names(["method", "route", "status"])
            .register()
            .unwrap_err(),
    ];
    for error in errors {
        assert!(error.to_string().contains("HTTP recorder"), "{error}");
    }
    // A second recorder on the same registry shares it, as before.
    assert!(HttpMetrics::builder(&registry).build().is_ok());
}

#[test]
fn upgraded_connections_are_counted_but_not_timed() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    let mut ws = metrics.start("GET", route("/ws"));
    ws.response(101);
    ws.upgraded();
    ws.finish();
    let labels = [("method", "GET"), ("route", "/ws"), ("status", "101")];
    assert_eq!(value(&registry, "http_requests_total", &labels), Some(1.0));
    assert_eq!(
        value(&registry, "http_request_duration_seconds_count", &labels),
        None
    );
}

#[test]
fn headers_ready_keeps_the_guard_for_the_body_or_records_at_the_headers() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    let labels = |status| [("method", "GET"), ("route", "/r"), ("status", status)];
    let count = |status| value(&registry, "http_requests_total", &labels(status));
    let timed = |status| {
        value(
            &registry,
            "http_request_duration_seconds_count",
            &labels(status),
        )
    };
    // Kept for the body: nothing recorded until it finishes.
    let mut body = Some(metrics.start("GET", route("/r")));
    RequestGuard::headers_ready(&mut body, 200, false);
    assert_eq!(count("200"), None);
    body.expect("kept for the body").finish();
    assert_eq!((count("200"), timed("200")), (Some(1.0), Some(1.0)));
    // The clock stops at the headers: recorded now, nothing left to keep.
    let mut none = Some(metrics.start("GET", route("/r")));
    RequestGuard::headers_ready(&mut none, 204, true);
    assert!(none.is_none());
    assert_eq!((count("204"), timed("204")), (Some(1.0), Some(1.0)));
    // A 101 is an upgrade: counted, not timed.
    let mut ws = Some(metrics.start("GET", route("/r")));
    RequestGuard::headers_ready(&mut ws, 101, false);
    drop(ws);
    // No guard (an excluded route): nothing to do.
    let mut excluded = None;
    RequestGuard::headers_ready(&mut excluded, 200, true);
    assert_eq!((count("101"), timed("101")), (Some(1.0), None));
}

#[test]
fn unmatched_excluded_and_moved_routes() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry)
        .exclude_route("/health")
        .unmatched_route("none")
        .build()
        .unwrap();
    metrics.start("POST", None).finish();
    assert_eq!(
        value(
            &registry,
            "http_requests_total",
            &[("method", "POST"), ("route", "none"), ("status", "499")]
        ),
        Some(1.0)
    );
    let mut health = metrics.start("GET", route("/health"));
    health.response(200);
    health.finish();
    assert_eq!(
        value(
            &registry,
            "http_requests_in_flight",
            &[("method", "GET"), ("route", "/health")]
        ),
        None,
        "an excluded route records nothing"
    );
    // Routing learned the route after the request started (actix): in flight moves.
    let mut late = metrics.start("GET", None);
    late.set_route(route("/late"));
    let in_flight = |r| {
        value(
            &registry,
            "http_requests_in_flight",
            &[("method", "GET"), ("route", r)],
        )
    };
    assert_eq!(in_flight("none"), Some(0.0));
    assert_eq!(in_flight("/late"), Some(1.0));
    late.set_route(route("/health")); // routed to an excluded route after all
    assert_eq!(in_flight("/late"), Some(0.0));
    late.finish();
    assert_eq!(
        value(
            &registry,
            "http_requests_total",
            &[("method", "GET"), ("route", "/health"), ("status", "499")]
        ),
        None
    );
}

#[test]
fn a_405_counts_with_the_unmatched_requests() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    let mut guard = metrics.start("DELETE", route("/users/{id}"));
    guard.response(405);
    guard.finish();
    let total = |r| {
        value(
            &registry,
            "http_requests_total",
            &[("method", "DELETE"), ("route", r), ("status", "405")],
        )
    };
    assert_eq!(total(UNMATCHED_ROUTE), Some(1.0));
    assert_eq!(total("/users/{id}"), None);
    assert_eq!(
        value(
            &registry,
            "http_requests_in_flight",
            &[("method", "DELETE"), ("route", "/users/{id}")]
        ),
        Some(0.0)
    );
}

#[test]
fn the_endpoint_answers_the_same_way_for_every_adapter() {
    let registry = Registry::new();
    let _metrics = HttpMetrics::builder(&registry).build().unwrap();
    let ok = endpoint_response(&registry, "GET", None, true, Ok(()));
    assert_eq!(
        (ok.status, ok.content_type),
        (200, crate::encoding::text::CONTENT_TYPE)
    );
    assert!(ok.body.contains("# TYPE http_requests_total counter"));
    let om = endpoint_response(
        &registry,
        "GET",
        Some("application/openmetrics-text"),
        true,
        Ok(()),
    );
    assert!(om.body.ends_with("# EOF\n"));
    let head = endpoint_response(&registry, "HEAD", None, true, Ok(()));
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = endpoint_response(&registry, "POST", None, true, Ok(()));
    assert_eq!((post.status, post.allow), (405, Some("GET, HEAD")));
    assert_eq!(
        endpoint_response(&registry, "GET", None, false, Ok(())).status,
        403
    );
    let error = Error::InvalidBuckets {
        reason: "x".to_owned(),
    };
    let failed = endpoint_response(&registry, "GET", None, true, Err(&error));
    assert_eq!(failed.status, 500);
    assert!(
        failed.body.contains("invalid histogram buckets"),
        "{}",
        failed.body
    );
}

#[test]
fn statuses_can_be_grouped_into_classes() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry)
        .status_classes(true)
        .build()
        .unwrap();
    for status in [200, 204, 404, 503] {
        let mut guard = metrics.start("GET", route("/"));
        guard.response(status);
        guard.finish();
    }
    let total = |status| {
        value(
            &registry,
            "http_requests_total",
            &[("method", "GET"), ("route", "/"), ("status", status)],
        )
    };
    assert_eq!(total("2xx"), Some(2.0));
    assert_eq!(total("4xx"), Some(1.0));
    assert_eq!(total("5xx"), Some(1.0));
}

#[test]
fn opentelemetry_naming_uses_the_semantic_conventions() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry)
        .naming(Naming::OpenTelemetry)
        .body_sizes(true)
        .build()
        .unwrap();
    for (status, bytes) in [(200, 10), (404, 20), (503, 30)] {
        let mut guard = metrics.start("PUT", route("/doc"));
        guard.add_request_bytes(bytes);
        guard.response(status);
        guard.finish();
    }
    drop(metrics.start("PUT", route("/doc")));
    let count = |status, error| {
        value(
            &registry,
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "PUT"),
                ("http_route", "/doc"),
                ("http_response_status_code", status),
                ("error_type", error),
            ],
        )
    };
    assert_eq!(count("200", ""), Some(1.0));
    assert_eq!(count("404", ""), Some(1.0), "4xx is not a server error");
    assert_eq!(count("503", "503"), Some(1.0));
    assert_eq!(count("499", "cancelled"), Some(1.0));
    assert_eq!(
        value(
            &registry,
            "http_server_active_requests",
            &[("http_request_method", "PUT"), ("http_route", "/doc")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &registry,
            "http_server_request_body_size_bytes_sum",
            &[("http_request_method", "PUT"), ("http_route", "/doc")]
        ),
        Some(60.0),
        "one observation per request, with all its bytes"
    );
    assert_eq!(value(&registry, "http_requests_total", &[]), None);
}

#[test]
fn two_recorders_on_one_registry_share_series_and_two_registries_do_not() {
    let (a, b) = (Registry::new(), Registry::new());
    let first = HttpMetrics::builder(&a).build().unwrap();
    let second = HttpMetrics::builder(&a).build().unwrap();
    let other = HttpMetrics::builder(&b).build().unwrap();
    for metrics in [&first, &second, &other] {
        let mut guard = metrics.start("GET", route("/"));
        guard.response(200);
        guard.finish();
    }
    let labels = [("method", "GET"), ("route", "/"), ("status", "200")];
    assert_eq!(value(&a, "http_requests_total", &labels), Some(2.0));
    assert_eq!(value(&b, "http_requests_total", &labels), Some(1.0));
    // Other options on the same registry are a typed conflict, not a panic.
    let err = HttpMetrics::builder(&a)
        .buckets(Buckets::new([1.0]).unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
}

/// The lines of `registry`'s exposition that hold counts (not times or sizes, which
/// differ from run to run), sorted.
fn counts(registry: &Registry) -> Vec<String> {
    let text = crate::encoding::text::encode(registry);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| {
            !line.starts_with('#')
                && (line.contains("_total{")
                    || line.contains("_count{")
                    || line.contains("in_flight{"))
        })
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn hinted_routes_record_exactly_what_lookups_record() {
    type Configure = fn(HttpMetricsBuilder) -> HttpMetricsBuilder;
    // Each with the threads it runs on.
    let configurations: [(Configure, usize); 5] = [
        (|b| b, 3),
        (|b| b.status_classes(true), 3),
        (|b| b.naming(Naming::OpenTelemetry), 3),
        (|b| b.body_sizes(true), 3),
        // Past the cap, requests go to the overflow series, which is counted per lookup.
        // On one thread: which label sets take the four places depends on the order the
        // threads reach each registry in.
        (|b| b.series_cap(4), 1),
    ];
    // More statuses per route than a hint remembers, upgrades, 405s and requests that
    // never got a response, on three threads (one with a cap).
    let statuses = [
        200_u16, 404, 500, 201, 304, 503, 418, 302, 405, 101, NO_STATUS,
    ];
    let routes = ["/users/{id}", "/orders/{id}", "/health"];
    for (c, (configure, threads)) in configurations.into_iter().enumerate() {
        let (looked_up, hinted) = (Registry::new(), Registry::new());
        let plain = configure(HttpMetrics::builder(&looked_up)).build().unwrap();
        let fast = configure(HttpMetrics::builder(&hinted)).build().unwrap();
        let hints: Vec<RouteHint> = routes.iter().map(|_| RouteHint::new()).collect();
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let (plain, fast, hints) = (&plain, &fast, &hints);
                scope.spawn(move || {
                    for i in 0..300 {
                        let method = ["GET", "POST", "BREW"][(i + thread) % 3];
                        let r = i % routes.len();
                        let status = statuses[(i / 3 + thread) % statuses.len()];
                        let guards = [
                            plain.start(method, Some(routes[r])),
                            fast.start_hinted(method, Some(routes[r]), &hints[r]),
                        ];
                        for mut guard in guards {
                            guard.add_request_bytes(10);
                            if status != NO_STATUS {
                                guard.response(status);
                                guard.add_response_bytes(100);
                            }
                            if status == 101 {
                                guard.upgraded();
                            }
                            if status == NO_STATUS {
                                drop(guard);
                            } else {
                                guard.finish();
                            }
                        }
                    }
                });
            }
        });
        let expected = counts(&looked_up);
        assert!(expected.len() > 10, "configuration {c}: {expected:?}");
        assert_eq!(counts(&hinted), expected, "configuration {c}");
    }
}

#[test]
fn a_route_hint_records_what_a_lookup_would_for_every_method_and_recorder() {
    let (a, b) = (Registry::new(), Registry::new());
    let first = HttpMetrics::builder(&a).build().unwrap();
    let other = HttpMetrics::builder(&b).build().unwrap();
    // So that the other recorder has another route where the hint's series would be.
    other.start("GET", route("/")).finish();
    let hint = RouteHint::new();
    let in_flight = |registry: &Registry, method: &str| {
        value(
            registry,
            "http_requests_in_flight",
            &[("method", method), ("route", "/users/{id}")],
        )
    };
    // The first request of each method fills the hint, the next ones use it; a hint
    // that another recorder used first is not used (it names another family's series).
    let mut guards = Vec::new();
    for (metrics, method) in [
        (&first, "GET"),
        (&first, "GET"),
        (&first, "POST"),
        (&other, "GET"),
        (&first, "GET"),
        (&first, "BREW"),
    ] {
        guards.push(metrics.start_hinted(method, route("/users/{id}"), &hint));
    }
    assert_eq!(in_flight(&a, "GET"), Some(3.0));
    assert_eq!(in_flight(&a, "POST"), Some(1.0));
    assert_eq!(in_flight(&a, "_OTHER"), Some(1.0));
    assert_eq!(in_flight(&b, "GET"), Some(1.0));
    for (i, mut guard) in guards.into_iter().enumerate() {
        guard.response(if i == 1 { 500 } else { 200 });
        guard.finish();
    }
    assert_eq!(in_flight(&a, "GET"), Some(0.0));
    assert_eq!(in_flight(&b, "GET"), Some(0.0));
    let total = |registry: &Registry, method: &str, status: &str| {
        value(
            registry,
            "http_requests_total",
            &[
                ("method", method),
                ("route", "/users/{id}"),
                ("status", status),
            ],
        )
    };
    assert_eq!(total(&a, "GET", "200"), Some(2.0));
    assert_eq!(total(&a, "GET", "500"), Some(1.0));
    assert_eq!(total(&a, "POST", "200"), Some(1.0));
    assert_eq!(total(&a, "_OTHER", "200"), Some(1.0));
    assert_eq!(total(&b, "GET", "200"), Some(1.0));
    // A hint given with a route other than its first is not used: the request is counted
    // under its own route, not the one the hint found.
    let mut moved = first.start_hinted("GET", route("/orders/{id}"), &hint);
    let orders = [("method", "GET"), ("route", "/orders/{id}")];
    assert_eq!(value(&a, "http_requests_in_flight", &orders), Some(1.0));
    assert_eq!(in_flight(&a, "GET"), Some(0.0));
    moved.response(200);
    moved.finish();
    let orders_ok = [
        ("method", "GET"),
        ("route", "/orders/{id}"),
        ("status", "200"),
    ];
    assert_eq!(value(&a, "http_requests_total", &orders_ok), Some(1.0));
    assert_eq!(total(&a, "GET", "200"), Some(2.0));
    // A hint is shared between threads.
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..100 {
                    let mut guard = first.start_hinted("GET", route("/users/{id}"), &hint);
                    guard.response(200);
                    guard.finish();
                }
            });
        }
    });
    assert_eq!(total(&a, "GET", "200"), Some(202.0));
    assert_eq!(in_flight(&a, "GET"), Some(0.0));
    // A hint used once is never bound (nothing kept, nothing allocated); the second
    // request binds it.
    let once = RouteHint::new();
    for bound in [false, true] {
        let mut guard = first.start_hinted("GET", route("/users/{id}"), &once);
        guard.response(200);
        guard.finish();
        assert_eq!(once.bound.get().is_some(), bound);
    }
    assert_eq!(total(&a, "GET", "200"), Some(204.0));
    // An excluded route records nothing, hint or not.
    let excluding = HttpMetrics::builder(&Registry::new())
        .exclude_route("/health")
        .build()
        .unwrap();
    let guard = excluding.start_hinted("GET", route("/health"), &RouteHint::new());
    assert!(!guard.records_request_size() && matches!(guard.target, Target::Off));
}

#[test]
fn hostile_methods_and_routes_never_panic_and_stay_bounded() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry)
        .series_cap(50)
        .build()
        .unwrap();
    for i in 0..2_000 {
        let method = format!("M{i}\u{0}\n\"");
        let path = format!("/{i}/\"\\\n{{}}");
        let mut guard = metrics.start(&method, Some(path.as_str()));
        guard.response(200);
        guard.finish();
    }
    assert_eq!(
        value(
            &registry,
            "http_requests_total",
            &[
                ("method", "__overflow__"),
                ("route", "__overflow__"),
                ("status", "__overflow__")
            ]
        ),
        Some(1_950.0),
        "50 series, then the overflow: nothing lost, nothing unbounded"
    );
    let text = crate::encoding::text::encode(&registry);
    assert!(
        !text.contains("M1\u{0}"),
        "methods are normalised before they are labels"
    );
}

#[test]
fn a_hostile_declared_length_cannot_wrap_the_request_size_sum() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry)
        .body_sizes(true)
        .build()
        .unwrap();
    let sum = || {
        value(
            &registry,
            "http_request_size_bytes_sum",
            &[("method", "GET"), ("route", "/users/{id}")],
        )
        .unwrap()
    };
    // A body the handler never reads, declared near u64::MAX (behind an auth layer
    // answering 401, say): it counts as the largest length a declaration is trusted for.
    let mut guard = metrics.start("GET", route("/users/{id}"));
    guard.declared_request_length(|| Some("18446744073709551613"));
    guard.response(401);
    guard.finish();
    let after_the_lie = sum();
    #[allow(clippy::cast_precision_loss)]
    let limit = DECLARED_LENGTH_LIMIT as f64;
    assert_eq!(after_the_lie, limit);
    // Real requests afterwards still count to the byte.
    for _ in 0..1_000 {
        let mut guard = metrics.start("GET", route("/users/{id}"));
        guard.declared_request_length(|| Some("100"));
        guard.response(200);
        guard.finish();
    }
    assert_eq!(sum() - after_the_lie, 100_000.0);
    // A body read to its end counts the bytes read, whatever was declared.
    let mut guard = metrics.start("GET", route("/users/{id}"));
    guard.declared_request_length(|| Some("18446744073709551613"));
    let counter = guard.count_request_body();
    counter.add(7);
    counter.end();
    guard.response(200);
    guard.finish();
    assert_eq!(sum() - after_the_lie, 100_007.0);
    // One stopped early counts what was read, or the declared length if larger, bounded.
    let mut guard = metrics.start("GET", route("/users/{id}"));
    guard.declared_request_length(|| Some("18446744073709551613"));
    guard.count_request_body().add(7);
    guard.response(413);
    guard.finish();
    assert_eq!(sum() - after_the_lie, 100_007.0 + limit);
}

#[test]
fn the_live_page_sits_below_the_endpoint_behind_its_access_hook() {
    let registry = Registry::new();
    let off = AdapterOptions::new(&registry).build().unwrap();
    assert!(!off.is_endpoint("/metrics/live"));
    assert!(off
        .answer("/metrics/live", "GET", None, None, || true)
        .is_none());
    assert!(
        registry.windows().is_none(),
        "nothing turned the windows on"
    );

    let state = AdapterOptions::new(&registry)
        .endpoint(Some("/internal/metrics"))
        .live(true)
        .build()
        .unwrap();
    assert!(state.live());
    assert!(registry.windows().is_some());
    for path in [
        "/internal/metrics",
        "/internal/metrics/live",
        "/internal/metrics/live.json",
    ] {
        assert!(state.is_endpoint(path), "{path}");
    }
    for path in [
        "/metrics/live",
        "/internal/metrics/lives",
        "/internal/metrics/live/",
    ] {
        assert!(!state.is_endpoint(path), "{path}");
        assert!(state.answer(path, "GET", None, None, || true).is_none());
    }
    let mut asked = 0;
    let refused = state
        .answer("/internal/metrics/live.json", "GET", None, None, || {
            asked += 1;
            false
        })
        .unwrap();
    assert_eq!((refused.status, asked), (403, 1));
    let page = state
        .answer("/internal/metrics/live", "GET", None, Some("gzip"), || true)
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
    assert_eq!(
        page.header("content-encoding"),
        Some("gzip").filter(|_| cfg!(feature = "gzip"))
    );
    let data = state
        .answer("/internal/metrics/live.json", "GET", None, None, || true)
        .unwrap();
    assert_eq!(
        (data.status, data.header("content-type")),
        (200, Some("application/json"))
    );

    // Without an endpoint there is no live page either.
    let none = AdapterOptions::new(&Registry::new())
        .endpoint(None)
        .live(true)
        .build()
        .unwrap();
    assert!(!none.live() && !none.is_endpoint("/metrics/live"));
}

#[test]
fn a_traceparent_becomes_the_exemplar_of_the_counter_and_the_latency_bucket() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for header in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", // too short
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let mut guard = metrics.start("GET", Some("/bad"));
        guard.traceparent(Some(header.as_bytes()));
        guard.traceparent(Some(b"\xff\xfe"));
        guard.response(200);
        guard.finish();
    }
    let mut guard = metrics.start("GET", Some("/traced"));
    guard.traceparent(Some(valid.as_bytes()));
    guard.response(200);
    guard.finish();
    let mut plain = metrics.start("GET", Some("/traced"));
    plain.traceparent(None);
    plain.response(200);
    plain.finish();

    let text = crate::encoding::openmetrics::encode(&registry);
    let exemplar = "# {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"}";
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(exemplar)).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0]
        .starts_with("http_requests_total{method=\"GET\",route=\"/traced\",status=\"200\"} 2 # "));
    assert!(lines[1].starts_with(
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/traced\",status=\"200\",le=\"0.005\"} 2 # "
    ));
    assert!(
        !text
            .lines()
            .any(|l| l.contains("/bad") && l.contains(" # ")),
        "{text}"
    );
    // The Prometheus text format has no exemplars.
    assert!(!crate::encoding::text::encode(&registry).contains("trace_id"));
}

#[test]
fn a_route_keeps_at_most_one_trace_per_millisecond() {
    let registry = Registry::new();
    let metrics = HttpMetrics::builder(&registry).build().unwrap();
    let tick = crate::util::clock::ticks_per_millisecond();
    let header = |n: u8| format!("00-{:032x}-00f067aa0ba902b7-01", u128::from(n) + 1);
    let start = crate::util::clock::now();
    let keeps = |at: u64, header: &str| {
        let mut guard = metrics.start("GET", Some("/sampled"));
        guard.started = at;
        guard.traceparent(Some(header.as_bytes()));
        let kept = guard.sizes.as_ref().is_some_and(|s| s.trace.is_some());
        guard.response(200);
        guard.finish();
        kept
    };
    // A malformed header takes nothing from the route's next request.
    assert!(!keeps(start, "00-garbage"));
    assert!(keeps(start, &header(1)));
    // Within the millisecond, and a request that started before the one kept: no parse, no
    // allocation.
    assert!(!keeps(start + tick / 2, &header(2)));
    assert!(!keeps(start - 1, &header(3)));
    // Another method of the route samples on its own.
    let mut post = metrics.start("POST", Some("/sampled"));
    post.started = start;
    post.traceparent(Some(header(4).as_bytes()));
    assert!(post.sizes.as_ref().is_some_and(|s| s.trace.is_some()));
    drop(post);
    // A millisecond later.
    assert!(keeps(start + tick, &header(5)));
    let text = crate::encoding::openmetrics::encode(&registry);
    let counter = text
        .lines()
        .find(|l| l.starts_with("http_requests_total{method=\"GET\",route=\"/sampled\""))
        .unwrap();
    assert!(counter.contains(&header(5)[3..35]), "{counter}");
}
