//! `#[instrumented(crate = ..)]` records as the default path does, wherever the core crate is.

use vitals_renamed_dependency::{parse, through_the_adapter, Store, REGISTRY};

fn calls(registry: &observability::Registry, function: &str, result: &str) -> Option<f64> {
    registry.get_sample_value(
        "function_calls_total",
        &[
            ("function", function),
            ("module", "vitals_renamed_dependency"),
            ("result", result),
        ],
    )
}

#[test]
fn a_renamed_dependency_records_through_the_path_it_is_given() {
    assert_eq!(parse("12"), Ok(12));
    assert!(parse("twelve").is_err());
    assert_eq!(Store.get(4), Some(4));

    assert_eq!(calls(&REGISTRY, "parse", "ok"), Some(1.0));
    assert_eq!(calls(&REGISTRY, "parse", "error"), Some(1.0));
    assert_eq!(calls(&REGISTRY, "Store::get", "ok"), Some(1.0));
}

#[test]
fn the_adapters_re_export_is_enough_for_the_macro() {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};

    // Polled by hand: the function never waits, so it needs no runtime.
    let mut future = std::pin::pin!(through_the_adapter(1));
    let done = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert_eq!(done, Poll::Ready(2));
    let global = vitals_tower::vitals_core::Registry::global();
    assert_eq!(calls(global, "through_the_adapter", "ok"), Some(1.0));
}

#[test]
fn derived_label_sets_work_through_a_renamed_dependency() {
    use vitals_renamed_dependency::{Job, Outcome};
    let registry = observability::Registry::new();
    let jobs = registry
        .counter("jobs", "Jobs run.")
        .typed_labels::<Job<'static>>()
        .register()
        .unwrap();
    jobs.get(&Job {
        queue: "mail",
        outcome: Outcome::Retry,
    })
    .inc();
    let labels = [("outcome", "retried"), ("queue", "mail")];
    assert_eq!(registry.get_sample_value("jobs_total", &labels), Some(1.0));
    let _ = Outcome::Done;
}
