use super::*;

fn with<T>(recorder: &FacadeRecorder, f: impl FnOnce() -> T) -> T {
    metrics::with_local_recorder(recorder, f)
}

#[test]
fn names_are_sanitised_and_suffixed_and_units_converted() {
    let registry = Registry::new();
    let recorder = FacadeRecorder::new(&registry);
    with(&recorder, || {
        metrics::describe_counter!("tokio.polls", "Polls.");
        metrics::describe_histogram!("db.query", metrics::Unit::Microseconds, "Query time.");
        metrics::describe_gauge!("cache.size", metrics::Unit::Kibibytes, "Cache size.");
        metrics::describe_counter!("busy", metrics::Unit::Milliseconds, "Busy time.");
        metrics::counter!("tokio.polls").increment(5);
        metrics::counter!("requests_total").increment(1);
        metrics::counter!("9lives").increment(1);
        metrics::histogram!("db.query").record(1500.0);
        metrics::gauge!("cache.size").set(2.0);
        metrics::gauge!("cache.size").increment(1.0);
        metrics::counter!("busy").increment(1500);
        metrics::counter!("busy").absolute(1000); // below: no change
        metrics::counter!("tokio.polls").absolute(9);
    });
    let v = |name: &str| registry.get_sample_value(name, &[]);
    assert_eq!(v("tokio_polls_total"), Some(9.0));
    assert_eq!(v("requests_total"), Some(1.0));
    assert_eq!(v("_9lives_total"), Some(1.0));
    assert_eq!(v("db_query_seconds_count"), Some(1.0));
    assert_eq!(v("db_query_seconds_sum"), Some(0.0015));
    assert_eq!(v("cache_size_bytes"), Some(3.0 * 1024.0));
    assert_eq!(v("busy_seconds_total"), Some(1.5));
    let text = crate::encoding::text::encode(&registry);
    assert!(
        text.contains("# HELP db_query_seconds Query time.\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "# HELP requests_total requests_total, recorded through the metrics facade.\n"
        ),
        "{text}"
    );
}

#[test]
fn label_order_does_not_matter_and_histogram_buckets_follow_the_names() {
    let registry = Registry::new();
    let recorder = FacadeRecorder::builder(&registry)
        .buckets_for_prefix("job", Buckets::new([1.0, 2.0]).unwrap())
        .buckets_for_prefix("job_s", Buckets::new([5.0]).unwrap())
        .buckets_for_name("job_size", Buckets::new([100.0]).unwrap())
        .build();
    with(&recorder, || {
        metrics::counter!("jobs", "queue" => "mail", "kind" => "send").increment(2);
        metrics::counter!("jobs", "kind" => "send", "queue" => "mail").increment(1);
        metrics::histogram!("job_time").record(1.5);
        metrics::histogram!("job_step").record(1.5);
        metrics::histogram!("job_size").record(1.5);
        metrics::histogram!("other").record(1.5);
    });
    let labels = [("kind", "send"), ("queue", "mail")];
    assert_eq!(registry.get_sample_value("jobs_total", &labels), Some(3.0));
    let bucket = |name: &str, le: &str| registry.get_sample_value(name, &[("le", le)]);
    assert_eq!(bucket("job_time_bucket", "2"), Some(1.0));
    assert_eq!(bucket("job_step_bucket", "5"), Some(1.0));
    assert_eq!(
        bucket("job_step_bucket", "2"),
        None,
        "the longer prefix wins"
    );
    assert_eq!(bucket("job_size_bucket", "100"), Some(1.0));
    assert_eq!(
        bucket("other_bucket", "2.5"),
        Some(1.0),
        "the default buckets"
    );
}

#[test]
fn conflicts_are_counted_once_and_never_panic() {
    let registry = Registry::new();
    let mine = registry.gauge("queue_depth", "Mine.").register().unwrap();
    let recorder = FacadeRecorder::new(&registry);
    for _ in 0..3 {
        with(&recorder, || {
            // The name is a vitals gauge already: a counter cannot take it.
            metrics::counter!("queue_depth").increment(7);
            // One name, two label sets.
            metrics::counter!("hits", "a" => "1").increment(1);
            metrics::counter!("hits", "b" => "1").increment(1);
            // One name, two types.
            metrics::gauge!("hits", "a" => "1").set(4.0);
        });
    }
    mine.set(2);
    assert_eq!(registry.get_sample_value("queue_depth", &[]), Some(2.0));
    assert_eq!(
        registry.get_sample_value("hits_total", &[("a", "1")]),
        Some(3.0)
    );
    let errors = |metric: &str| {
        registry.get_sample_value("vitals_facade_errors_total", &[("metric", metric)])
    };
    assert_eq!(errors("queue_depth"), Some(1.0));
    assert_eq!(
        errors("hits"),
        Some(2.0),
        "the label mismatch, and the type clash"
    );
}

#[test]
fn caps_hold_under_many_label_values() {
    let registry = Registry::new().with_series_cap(100);
    let recorder = FacadeRecorder::new(&registry);
    with(&recorder, || {
        for i in 0..10_000 {
            metrics::counter!("by_user", "user" => i.to_string()).increment(1);
        }
    });
    let text = crate::encoding::text::encode(&registry);
    let series = text
        .lines()
        .filter(|l| l.starts_with("by_user_total{"))
        .count();
    assert!(series <= 101, "{series} series");
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("by_user_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        total, 10_000.0,
        "nothing lost: the overflow series has the rest"
    );
    let cached = recorder.inner.handles.read().unwrap().len();
    assert!(cached <= MAX_CACHED_KEYS, "{cached}");
}

#[test]
fn the_handle_cache_stays_bounded_and_keys_past_it_still_record() {
    let registry = Registry::new().with_series_cap(MAX_CACHED_KEYS + 100);
    let recorder = FacadeRecorder::new(&registry);
    let n = MAX_CACHED_KEYS + 50;
    with(&recorder, || {
        for i in 0..n {
            metrics::counter!("flood", "id" => i.to_string()).increment(1);
        }
        // A key past the cache, again: looked up in its family, same series.
        metrics::counter!("flood", "id" => (n - 1).to_string()).increment(1);
    });
    assert_eq!(
        recorder.inner.handles.read().unwrap().len(),
        MAX_CACHED_KEYS
    );
    let last = (n - 1).to_string();
    assert_eq!(
        registry.get_sample_value("flood_total", &[("id", &last)]),
        Some(2.0)
    );
}
