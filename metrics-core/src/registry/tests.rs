use super::*;
use crate::collector::MetricFamily;
use crate::family::Family;
use crate::metric::MetricValue;

#[test]
fn re_registering_the_same_schema_returns_the_same_metric() {
    let r = Registry::new();
    let a = r.counter("a", "help").register().unwrap();
    let b = r.counter("a_total", "help").register().unwrap();
    a.inc();
    assert_eq!(b.get(), 1);
    let f1 = r
        .histogram("h", "help")
        .label_names(["x"])
        .register()
        .unwrap();
    let f2 = r
        .histogram("h", "help")
        .label_names(["x"])
        .register()
        .unwrap();
    f1.with_label_values(&["1"]).unwrap().observe(1.0);
    assert_eq!(f2.with_label_values(&["1"]).unwrap().count(), 1);
}

#[test]
fn a_different_schema_is_a_typed_conflict_that_names_the_difference() {
    let r = Registry::new();
    r.counter("jobs", "Jobs.")
        .label_names(["queue"])
        .register()
        .unwrap();
    let cases = [
        r.gauge("jobs", "Jobs.").register().map(|_| ()).unwrap_err(),
        r.counter("jobs", "Jobs.")
            .label_names(["other"])
            .register()
            .map(|_| ())
            .unwrap_err(),
        r.counter("jobs", "Other help.")
            .label_names(["queue"])
            .register()
            .map(|_| ())
            .unwrap_err(),
        r.float_counter("jobs", "Jobs.")
            .label_names(["queue"])
            .register()
            .map(|_| ())
            .unwrap_err(),
        // `jobs_total` is the sample name of the counter.
        r.gauge("jobs_total", "Jobs.")
            .register()
            .map(|_| ())
            .unwrap_err(),
    ];
    for err in cases {
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }
    r.histogram("lat", "L.").register().unwrap();
    let err = r
        .histogram("lat", "L.")
        .buckets(Buckets::new([1.0]).unwrap())
        .register()
        .unwrap_err();
    assert!(err.to_string().contains("buckets"), "{err}");
}

#[test]
fn names_are_validated_with_the_offending_string_in_the_error() {
    let r = Registry::new();
    let err = r.counter("bad-name", "h").register().unwrap_err();
    assert!(err.to_string().contains("\"bad-name\""), "{err}");
    let err = r
        .counter("ok", "h")
        .label_names(["__x"])
        .register()
        .unwrap_err();
    assert!(err.to_string().contains("\"__x\""), "{err}");
    let err = r
        .histogram("h", "h")
        .label_names(["le"])
        .register()
        .unwrap_err();
    assert!(err.to_string().contains("le"), "{err}");
    let err = r
        .summary("s", "h")
        .label_names(["quantile"])
        .register()
        .unwrap_err();
    assert!(err.to_string().contains("quantile"), "{err}");
    assert!(r.counter("x", "h").unit("sec onds").register().is_err());
    assert!(r.with_prefix("a-b").is_err());
    assert!(r.with_const_labels(&[("__a", "1")]).is_err());
    assert!(r.gauge("vitals_series_overflow", "h").register().is_err());
    let err = r
        .summary("s", "h")
        .quantiles(&[2.0])
        .register()
        .unwrap_err();
    assert!(err.to_string().contains('2'), "{err}");
}

#[test]
fn a_const_label_cannot_repeat_a_family_label() {
    let r = Registry::new()
        .with_const_labels(&[("env", "prod")])
        .unwrap();
    let err = r
        .counter("c", "h")
        .label_names(["env"])
        .register()
        .unwrap_err();
    assert!(err.to_string().contains("env"), "{err}");
}

#[test]
fn units_prefixes_and_const_labels_shape_the_exposed_name() {
    let r = Registry::new();
    let sub = r.with_prefix("app").unwrap().with_prefix("db").unwrap();
    sub.histogram("query_duration", "h")
        .unit("seconds")
        .register()
        .unwrap()
        .observe(0.1);
    assert_eq!(
        r.get_sample_value("app_db_query_duration_seconds_count", &[]),
        Some(1.0)
    );
    // Two views with different constant labels share one family name.
    let a = r.with_const_labels(&[("shard", "a")]).unwrap();
    let b = r.with_const_labels(&[("shard", "b")]).unwrap();
    a.counter("ops", "Ops.").register().unwrap().inc();
    b.counter("ops", "Ops.").register().unwrap().inc_by(2);
    assert_eq!(
        r.get_sample_value("ops_total", &[("shard", "a")]),
        Some(1.0)
    );
    assert_eq!(
        r.get_sample_value("ops_total", &[("shard", "b")]),
        Some(2.0)
    );
}

#[test]
fn get_sample_value_reads_every_sample_kind() {
    let r = Registry::new();
    let h = r
        .histogram("h_seconds", "h")
        .buckets(Buckets::new([1.0, 2.0]).unwrap())
        .register()
        .unwrap();
    h.observe(1.5);
    h.observe(0.5);
    assert_eq!(
        r.get_sample_value("h_seconds_bucket", &[("le", "1")]),
        Some(1.0)
    );
    assert_eq!(
        r.get_sample_value("h_seconds_bucket", &[("le", "2.0")]),
        Some(2.0)
    );
    assert_eq!(
        r.get_sample_value("h_seconds_bucket", &[("le", "+Inf")]),
        Some(2.0)
    );
    assert_eq!(r.get_sample_value("h_seconds_sum", &[]), Some(2.0));
    assert_eq!(r.get_sample_value("h_seconds_count", &[]), Some(2.0));
    assert_eq!(r.get_sample_value("h_seconds", &[]), None);
    assert_eq!(
        r.get_sample_value("h_seconds_bucket", &[]),
        None,
        "le is required"
    );
    let g = r.float_gauge("g", "g").register().unwrap();
    g.set(-2.5);
    assert_eq!(r.get_sample_value("g", &[]), Some(-2.5));
    r.info("build", "b").register(&[("version", "1")]).unwrap();
    assert_eq!(
        r.get_sample_value("build_info", &[("version", "1")]),
        Some(1.0)
    );
    assert_eq!(r.get_sample_value("build_info", &[]), None);
}

#[test]
fn the_cap_redirects_new_label_sets_and_counts_them() {
    let r = Registry::new().with_series_cap(3);
    let f = r
        .counter("c", "h")
        .label_names(["path"])
        .register()
        .unwrap();
    for i in 0..10 {
        f.with_labels(&[("path", &format!("/{i}"))]).unwrap().inc();
    }
    f.with_labels(&[("path", "/0")]).unwrap().inc();
    assert_eq!(f.len(), 3);
    assert_eq!(f.overflowed(), 7);
    assert_eq!(r.get_sample_value("c_total", &[("path", "/0")]), Some(2.0));
    assert_eq!(
        r.get_sample_value("c_total", &[("path", "__overflow__")]),
        Some(7.0)
    );
    assert_eq!(
        r.get_sample_value("vitals_series_overflow_total", &[("metric", "c")]),
        Some(7.0)
    );
}

#[test]
fn remove_and_clear_drop_series_from_the_exposition() {
    let r = Registry::new();
    let f = r
        .gauge("g", "h")
        .label_names(["a", "b"])
        .register()
        .unwrap();
    for i in 0..5 {
        f.with_label_values(&[&i.to_string(), "x"]).unwrap().set(i);
    }
    assert!(f.remove(&[("b", "x"), ("a", "1")]).unwrap());
    assert!(!f.remove(&[("b", "x"), ("a", "1")]).unwrap());
    assert_eq!(f.len(), 4);
    assert_eq!(r.get_sample_value("g", &[("a", "1"), ("b", "x")]), None);
    // The series moved into the hole is still found, with its value.
    assert_eq!(
        r.get_sample_value("g", &[("a", "4"), ("b", "x")]),
        Some(4.0)
    );
    assert_eq!(f.with_label_values(&["4", "x"]).unwrap().get(), 4);
    f.clear();
    assert!(f.is_empty());
    assert_eq!(r.get_sample_value("g", &[("a", "4"), ("b", "x")]), None);
    assert_eq!(
        f.with_label_values(&["4", "x"]).unwrap().get(),
        0,
        "a new series after clear"
    );
}

#[test]
fn label_mismatches_are_errors_that_say_what_is_wrong() {
    let r = Registry::new();
    let f = r
        .counter("c", "h")
        .label_names(["a", "b"])
        .register()
        .unwrap();
    let missing = f.with_labels(&[("a", "1")]).unwrap_err().to_string();
    assert!(missing.contains("`b` is missing"), "{missing}");
    let unknown = f
        .with_labels(&[("a", "1"), ("b", "2"), ("c", "3")])
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown label `c`"), "{unknown}");
    let twice = f
        .with_labels(&[("a", "1"), ("a", "2")])
        .unwrap_err()
        .to_string();
    assert!(twice.contains("more than once"), "{twice}");
    assert!(f.with_label_values(&["1"]).is_err());
    assert!(f.is_empty(), "failed lookups create nothing");
}

#[test]
fn failing_and_invalid_collectors_are_counted_and_do_not_spoil_the_scrape() {
    let r = Registry::new();
    r.counter("kept", "h").register().unwrap().inc();
    r.register_collector("broken", || Err("database is down".into()))
        .unwrap();
    r.register_collector(
        "panicking",
        || -> Result<Vec<MetricFamily>, crate::CollectError> { panic!("collector bug") },
    )
    .unwrap();
    r.register_collector("invalid", || {
        Ok(vec![
            MetricFamily::gauge("bad name", "h").with_sample(&[], MetricValue::gauge(1)),
            MetricFamily::gauge("kept_total", "clashes").with_sample(&[], MetricValue::gauge(1)),
            MetricFamily::counter("neg", "h").with_sample(&[], MetricValue::counter(-1.0)),
            MetricFamily::gauge("good", "h").with_sample(&[("x", "1")], MetricValue::gauge(7)),
        ])
    })
    .unwrap();
    assert!(r.register_collector("broken", || Ok(vec![])).is_err());
    assert_eq!(r.get_sample_value("kept_total", &[]), Some(1.0));
    assert_eq!(r.get_sample_value("good", &[("x", "1")]), Some(7.0));
    assert_eq!(r.get_sample_value("neg_total", &[]), None);
    for name in ["broken", "panicking", "invalid"] {
        // Each walk runs the collectors once more; the count only grows.
        let n = r
            .get_sample_value("vitals_collector_errors_total", &[("collector", name)])
            .unwrap();
        assert!(n >= 1.0, "{name}: {n}");
    }
}

#[test]
fn a_collector_that_calls_into_its_registry_does_not_deadlock_the_scrape() {
    // Registers a collector, a metric and an `#[instrumented]`-style shared collector, and
    // reads a sample, all from inside collect(): each takes a lock the scrape used to hold
    // for the whole collector pass.
    let r = Registry::new();
    let inner = r.clone();
    r.register_collector("reentrant", move || {
        let _ = inner.register_collector("late", || {
            Ok(vec![
                MetricFamily::gauge("late", "h").with_sample(&[], MetricValue::gauge(5))
            ])
        });
        inner.counter("made_in_collect", "h").register()?.inc();
        let seen = inner.get_sample_value("made_in_collect_total", &[]);
        Ok(vec![MetricFamily::gauge("seen", "h").with_sample(
            &[],
            MetricValue::gauge(i64::from(seen.is_some())),
        )])
    })
    .unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let scraper = r.clone();
    std::thread::spawn(move || {
        let first = scraper.get_sample_value("seen", &[]);
        let second = scraper.get_sample_value("late", &[]);
        let _ = done.send((first, second));
    });
    // A deadlock never answers; a generous bound turns it into a failure instead of a hang.
    let (first, second) = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the scrape finished: no deadlock");
    assert_eq!(
        first,
        Some(1.0),
        "a read inside collect() sees registered families"
    );
    assert_eq!(
        second,
        Some(5.0),
        "a collector registered inside collect() is scraped next"
    );
    // Two scrapes ran the collector; this read sees the counter before running it again.
    assert_eq!(r.get_sample_value("made_in_collect_total", &[]), Some(2.0));
}

#[test]
fn the_global_registry_is_one_registry() {
    let a = Registry::global();
    let b = Registry::global();
    assert!(Arc::ptr_eq(&a.store, &b.store));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Registry>();
    check::<Family<Counter>>();
    check::<Family<Histogram>>();
    check::<Summary>();
    check::<Error>();
    check::<MetricFamily>();
}
