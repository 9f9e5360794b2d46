use super::*;

#[test]
fn short_type_names_drop_paths_generics_and_references() {
    assert_eq!(short_type_name("alloc::vec::Vec<u8>"), "Vec");
    assert_eq!(short_type_name("&mut app::store::Store<T, U>"), "Store");
    assert_eq!(short_type_name("app::Plain"), "Plain");
    assert_eq!(short_type_name("[u8]"), "[u8]");
    assert_eq!(short_type_name("(i32, app::X)"), "(i32, app::X)");
}

#[test]
fn outcomes_follow_the_most_specific_rule() {
    use outcome::*;
    let ok: Result<u8, ()> = Ok(1);
    let err: Result<u8, ()> = Err(());
    assert_eq!((&&&&&Classify(&ok)).__vitals_outcome(), Outcome::Ok);
    assert_eq!((&&&&&Classify(&err)).__vitals_outcome(), Outcome::Error);
    assert_eq!((&&&&&Classify(&5_u8)).__vitals_outcome(), Outcome::Ok);
    assert_eq!((&&&&&Classify("text")).__vitals_outcome(), Outcome::Ok);
}

#[cfg(feature = "http")]
#[test]
fn server_error_statuses_are_errors() {
    use outcome::*;
    let teapot = http::StatusCode::IM_A_TEAPOT;
    let broken = http::StatusCode::BAD_GATEWAY;
    assert_eq!((&&&&&Classify(&teapot)).__vitals_outcome(), Outcome::Ok);
    assert_eq!((&&&&&Classify(&broken)).__vitals_outcome(), Outcome::Error);
    assert_eq!(
        (&&&&&Classify(&(broken, "x"))).__vitals_outcome(),
        Outcome::Error
    );
    let ok_but_500: Result<http::StatusCode, ()> = Ok(http::StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        (&&&&&Classify(&ok_but_500)).__vitals_outcome(),
        Outcome::Error
    );
    let response = http::Response::builder().status(503).body(()).unwrap();
    assert_eq!(
        (&&&&&Classify(&response)).__vitals_outcome(),
        Outcome::Error
    );
}

static SITE: Site<DEFAULT_BUCKETS> = Site::new(SiteMeta {
    function: "work",
    module: "tests",
    bounds: DEFAULT_BOUNDS,
    labels: &[("team", "core")],
});

#[test]
fn a_site_counts_calls_errors_drops_and_in_flight() {
    let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
    let call = Call::start(&SITE, || registry, || None);
    assert_eq!(
        registry.get_sample_value(
            "function_calls_concurrent",
            &[("function", "work"), ("module", "tests"), ("team", "core")]
        ),
        Some(1.0)
    );
    call.finish(Outcome::Ok);
    Call::start(&SITE, || registry, || None).finish(Outcome::Error);
    drop(Call::start(&SITE, || registry, || None));
    let value = |name: &str, result: &str| {
        registry.get_sample_value(
            name,
            &[
                ("function", "work"),
                ("module", "tests"),
                ("team", "core"),
                ("result", result),
            ],
        )
    };
    assert_eq!(value("function_calls_total", "ok"), Some(1.0));
    assert_eq!(value("function_calls_total", "error"), Some(1.0));
    assert_eq!(value("function_calls_total", "dropped"), Some(1.0));
    assert_eq!(
        value("function_calls_duration_seconds_count", "ok"),
        Some(1.0)
    );
    assert_eq!(
        registry.get_sample_value(
            "function_calls_concurrent",
            &[("function", "work"), ("module", "tests"), ("team", "core")]
        ),
        Some(0.0)
    );
}
