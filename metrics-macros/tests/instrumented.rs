//! `#[instrumented]` records what each form of function does, and changes nothing else.
//!
//! Every test records into a registry of its own (`registry = ...`), so tests running in
//! parallel never see each other's calls.

use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Waker};

use vitals_core::{instrumented, Registry};

/// `function_calls_total` of one function and result, 0 when absent; the module is the caller's.
macro_rules! calls {
    ($registry:expr, $function:expr, $result:expr) => {
        $registry
            .get_sample_value(
                "function_calls_total",
                &[
                    ("function", $function),
                    ("module", module_path!()),
                    ("result", $result),
                ],
            )
            .unwrap_or(0.0)
    };
}

/// `function_calls_concurrent` of one function of the caller's module.
macro_rules! in_flight {
    ($registry:expr, $function:expr) => {
        $registry.get_sample_value(
            "function_calls_concurrent",
            &[("function", $function), ("module", module_path!())],
        )
    };
}

mod free_functions {
    use super::*;

    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

    #[derive(Debug)]
    struct ParseError;

    impl From<std::num::ParseIntError> for ParseError {
        fn from(_: std::num::ParseIntError) -> Self {
            ParseError
        }
    }

    /// Parses a number.
    #[instrumented(registry = REGISTRY)]
    fn parse(input: &str) -> Result<u32, ParseError> {
        // `?` converts with `From`, as it did before.
        let n: u32 = input.trim().parse()?;
        Ok(n)
    }

    #[instrumented(registry = REGISTRY)]
    fn double(n: u64) -> u64 {
        n * 2
    }

    #[instrumented(registry = REGISTRY)]
    fn explode(really: bool) -> u8 {
        assert!(!really, "exploded on purpose");
        1
    }

    #[test]
    fn ok_and_err_are_counted_by_result() {
        assert_eq!(parse("42").unwrap(), 42);
        assert!(parse("x").is_err());
        assert!(parse("-1").is_err());
        assert_eq!(calls!(REGISTRY, "parse", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "parse", "error"), 2.0);
        let count = REGISTRY.get_sample_value(
            "function_calls_duration_seconds_count",
            &[
                ("function", "parse"),
                ("module", module_path!()),
                ("result", "error"),
            ],
        );
        assert_eq!(count, Some(2.0));
        assert_eq!(in_flight!(REGISTRY, "parse"), Some(0.0));
    }

    #[test]
    fn a_value_that_is_not_a_result_is_ok() {
        assert_eq!(double(21), 42);
        assert_eq!(calls!(REGISTRY, "double", "ok"), 1.0);
        // The error series is there from the first call, so that error ratios are 0.
        assert_eq!(
            REGISTRY.get_sample_value(
                "function_calls_total",
                &[
                    ("function", "double"),
                    ("module", module_path!()),
                    ("result", "error")
                ]
            ),
            Some(0.0)
        );
    }

    #[test]
    fn a_panic_is_an_error_and_leaves_nothing_in_flight() {
        assert_eq!(explode(false), 1);
        let panicked = std::panic::catch_unwind(|| explode(true));
        assert!(panicked.is_err());
        assert_eq!(calls!(REGISTRY, "explode", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "explode", "error"), 1.0);
        assert_eq!(in_flight!(REGISTRY, "explode"), Some(0.0));
    }

    #[test]
    fn calls_from_many_threads_are_all_counted() {
        #[instrumented(registry = REGISTRY)]
        fn busy(i: u64) -> u64 {
            i + 1
        }
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..2_500 {
                        busy(i);
                    }
                });
            }
        });
        assert_eq!(calls!(REGISTRY, "busy", "ok"), 10_000.0);
        assert_eq!(in_flight!(REGISTRY, "busy"), Some(0.0));
    }
}

mod async_functions {
    use super::*;

    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

    #[instrumented(registry = REGISTRY)]
    async fn fetch(id: u32) -> Result<String, std::io::Error> {
        tokio::task::yield_now().await;
        if id == 0 {
            return Err(std::io::Error::other("no such id"));
        }
        Ok(format!("item {id}"))
    }

    #[instrumented(registry = REGISTRY)]
    async fn never_ready() {
        std::future::pending::<()>().await;
    }

    #[tokio::test]
    async fn results_of_async_functions_are_counted() {
        assert_eq!(fetch(7).await.unwrap(), "item 7");
        assert!(fetch(0).await.is_err());
        assert_eq!(calls!(REGISTRY, "fetch", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "fetch", "error"), 1.0);
    }

    #[test]
    fn a_future_dropped_before_it_completes_is_counted_as_dropped() {
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut future = pin!(never_ready());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            assert_eq!(in_flight!(REGISTRY, "never_ready"), Some(1.0));
        }
        assert_eq!(in_flight!(REGISTRY, "never_ready"), Some(0.0));
        assert_eq!(calls!(REGISTRY, "never_ready", "dropped"), 1.0);
        assert_eq!(calls!(REGISTRY, "never_ready", "ok"), 0.0);
    }

    #[test]
    fn the_futures_stay_send() {
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&fetch(1));
        assert_send(&never_ready());
    }

    #[tokio::test]
    async fn a_panicking_async_function_is_an_error() {
        #[instrumented(registry = REGISTRY)]
        async fn boom() -> u8 {
            tokio::task::yield_now().await;
            panic!("on purpose")
        }
        let joined = tokio::spawn(boom()).await;
        assert!(joined.is_err());
        assert_eq!(calls!(REGISTRY, "boom", "error"), 1.0);
        assert_eq!(in_flight!(REGISTRY, "boom"), Some(0.0));
    }
}

mod methods {
    use super::*;

    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

    struct Store {
        items: Vec<String>,
    }

    #[instrumented(registry = REGISTRY)]
    impl Store {
        fn new() -> Self {
            Store { items: Vec::new() }
        }

        fn add(&mut self, item: &str) -> &mut Self {
            self.items.push(item.to_owned());
            self
        }

        /// Borrows out of `self`, as before.
        fn first(&self) -> Option<&str> {
            self.items.first().map(String::as_str)
        }

        fn first_mut(&mut self) -> Option<&mut String> {
            self.items.first_mut()
        }

        #[instrumented(skip)]
        fn len(&self) -> usize {
            self.items.len()
        }

        #[instrumented(name = "store_clear")]
        fn clear(&mut self) {
            self.items.clear();
        }

        const fn capacity_hint() -> usize {
            16
        }
    }

    struct Wrapper<T>(T);

    impl<T: Clone> Wrapper<T> {
        // On the method alone, the type is read from `Self` at the first call.
        #[instrumented(registry = REGISTRY)]
        fn get(&self) -> T {
            self.0.clone()
        }
    }

    #[test]
    fn methods_of_an_impl_block_are_named_type_and_method() {
        let mut store = Store::new();
        store.add("a").add("b");
        assert_eq!(store.first(), Some("a"));
        store.first_mut().unwrap().push('!');
        assert_eq!(store.first(), Some("a!"));
        assert_eq!(store.len(), 2);
        store.clear();
        assert_eq!(Store::capacity_hint(), 16);

        assert_eq!(calls!(REGISTRY, "Store::new", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "Store::add", "ok"), 2.0);
        assert_eq!(calls!(REGISTRY, "Store::first", "ok"), 2.0);
        assert_eq!(calls!(REGISTRY, "Store::first_mut", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "store_clear", "ok"), 1.0);
        // Skipped, and const fns are left alone.
        assert_eq!(calls!(REGISTRY, "Store::len", "ok"), 0.0);
        assert_eq!(calls!(REGISTRY, "Store::capacity_hint", "ok"), 0.0);
    }

    #[test]
    fn generics_are_left_out_of_the_name() {
        assert_eq!(Wrapper(5_u8).get(), 5);
        assert_eq!(Wrapper("x".to_owned()).get(), "x");
        // One function, one series, whatever the instantiation.
        assert_eq!(calls!(REGISTRY, "Wrapper::get", "ok"), 2.0);
    }

    trait Greeter {
        fn greet(&self) -> String;
    }

    struct English;

    #[instrumented(registry = REGISTRY)]
    impl Greeter for English {
        fn greet(&self) -> String {
            "hello".into()
        }
    }

    trait Shout {
        fn shout(&self) -> String;
    }

    #[instrumented(registry = REGISTRY)]
    impl<T: Greeter> Shout for T {
        fn shout(&self) -> String {
            self.greet().to_uppercase()
        }
    }

    #[test]
    fn trait_impls_name_the_trait() {
        assert_eq!(English.shout(), "HELLO");
        assert_eq!(calls!(REGISTRY, "<English as Greeter>::greet", "ok"), 1.0);
        // A blanket impl has no type to name: the trait is the name.
        assert_eq!(calls!(REGISTRY, "Shout::shout", "ok"), 1.0);
    }

    trait Repository {
        async fn load(&self, id: u32) -> Option<u32>;
    }

    struct Memory;

    #[instrumented(registry = REGISTRY)]
    impl Repository for Memory {
        async fn load(&self, id: u32) -> Option<u32> {
            tokio::task::yield_now().await;
            (id < 10).then_some(id * 10)
        }
    }

    #[tokio::test]
    async fn native_async_fn_in_traits() {
        assert_eq!(Memory.load(3).await, Some(30));
        assert_eq!(calls!(REGISTRY, "<Memory as Repository>::load", "ok"), 1.0);
    }

    #[async_trait::async_trait]
    trait Mailer {
        async fn send(&self, to: &str) -> Result<(), String>;
    }

    struct Outer;
    struct Inner;

    async fn deliver(to: &str) -> Result<(), String> {
        tokio::task::yield_now().await;
        if to.contains('@') {
            Ok(())
        } else {
            Err(format!("bad address {to}"))
        }
    }

    // `#[instrumented]` first: it sees `async fn`s, and async-trait boxes the result.
    #[instrumented(registry = REGISTRY)]
    #[async_trait::async_trait]
    impl Mailer for Outer {
        async fn send(&self, to: &str) -> Result<(), String> {
            deliver(to).await
        }
    }

    // async-trait first: `#[instrumented]` finds the boxed `async move` block.
    #[async_trait::async_trait]
    #[instrumented(registry = REGISTRY)]
    impl Mailer for Inner {
        async fn send(&self, to: &str) -> Result<(), String> {
            deliver(to).await
        }
    }

    #[tokio::test]
    async fn async_trait_in_either_order() {
        assert!(Outer.send("a@b").await.is_ok());
        assert!(Outer.send("nobody").await.is_err());
        assert!(Inner.send("a@b").await.is_ok());
        assert!(Inner.send("nobody").await.is_err());
        for name in ["<Outer as Mailer>::send", "<Inner as Mailer>::send"] {
            assert_eq!(calls!(REGISTRY, name, "ok"), 1.0, "{name}");
            assert_eq!(calls!(REGISTRY, name, "error"), 1.0, "{name}");
        }
    }

    struct Service;

    #[async_trait::async_trait]
    impl Mailer for Service {
        // On one async-trait method, below the impl's `#[async_trait]`.
        #[instrumented(registry = REGISTRY)]
        async fn send(&self, _to: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn async_trait_on_one_method() {
        Service.send("x").await.unwrap();
        assert_eq!(calls!(REGISTRY, "Service::send", "ok"), 1.0);
    }
}

mod signatures {
    use super::*;

    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

    #[instrumented(registry = REGISTRY)]
    fn evens(limit: u32) -> impl Iterator<Item = u32> {
        (0..limit).filter(|n| n % 2 == 0)
    }

    #[instrumented(registry = REGISTRY)]
    fn evens_checked(limit: u32) -> Result<impl Iterator<Item = u32>, String> {
        if limit > 100 {
            return Err("too many".into());
        }
        Ok((0..limit).filter(|n| n % 2 == 0))
    }

    #[instrumented(registry = REGISTRY)]
    fn collect_squares(values: &[u32]) -> Vec<u32> {
        // The return type drives `.collect()`, as before.
        values.iter().map(|v| v * v).collect()
    }

    #[instrumented(registry = REGISTRY)]
    fn boxed_error(fail: bool) -> Result<u8, Box<dyn std::error::Error>> {
        if fail {
            // Coerced to the declared `Box<dyn Error>` at the `return`.
            return Err(Box::new(std::fmt::Error));
        }
        let n: u8 = "7".parse()?;
        Ok(n)
    }

    #[instrumented(registry = REGISTRY)]
    fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
        if a.len() >= b.len() {
            a
        } else {
            b
        }
    }

    #[instrumented(registry = REGISTRY)]
    fn sum_all<T>(items: impl IntoIterator<Item = T>) -> T
    where
        T: std::iter::Sum<T>,
    {
        items.into_iter().sum()
    }

    #[instrumented(registry = REGISTRY)]
    #[must_use]
    #[inline]
    pub(crate) fn visible() -> u8 {
        3
    }

    #[instrumented(registry = REGISTRY)]
    fn mutates(mut v: Vec<u8>) -> Vec<u8> {
        v.push(1);
        v
    }

    #[instrumented(registry = REGISTRY)]
    async fn async_impl(n: u8) -> impl std::fmt::Display {
        n + 1
    }

    #[tokio::test]
    async fn signatures_and_inference_are_unchanged() {
        assert_eq!(evens(7).collect::<Vec<_>>(), [0, 2, 4, 6]);
        assert_eq!(evens_checked(5).unwrap().count(), 3);
        assert!(evens_checked(500).is_err());
        assert_eq!(collect_squares(&[1, 2, 3]), [1, 4, 9]);
        assert!(boxed_error(true).is_err());
        assert_eq!(boxed_error(false).unwrap(), 7);
        assert_eq!(longest("abc", "de"), "abc");
        assert_eq!(sum_all([1.5, 2.5]), 4.0);
        assert_eq!(sum_all(vec![1_u8, 2]), 3);
        assert_eq!(visible(), 3);
        assert_eq!(mutates(vec![]), [1]);
        assert_eq!(async_impl(1).await.to_string(), "2");

        assert_eq!(calls!(REGISTRY, "evens_checked", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "evens_checked", "error"), 1.0);
        assert_eq!(calls!(REGISTRY, "boxed_error", "error"), 1.0);
        assert_eq!(calls!(REGISTRY, "sum_all", "ok"), 2.0);
        assert_eq!(calls!(REGISTRY, "async_impl", "ok"), 1.0);
    }
}

mod options {
    use super::*;

    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);
    static PREFIXED: LazyLock<Registry> = LazyLock::new(|| {
        Registry::new()
            .with_prefix("shop")
            .expect("a valid prefix")
            .with_const_labels(&[("service", "checkout")])
            .expect("a valid label")
    });

    #[instrumented(registry = REGISTRY, name = "checkout", buckets = [0.001, 0.1, 1])]
    fn pay() -> u8 {
        1
    }

    #[instrumented(registry = REGISTRY, labels(team = "billing", tier = "1"))]
    fn invoice() {}

    #[instrumented(registry = PREFIXED)]
    fn refund() {}

    fn is_empty(v: &[u8]) -> bool {
        v.is_empty()
    }

    fn has_content(v: &Option<u8>) -> bool {
        v.is_some()
    }

    #[instrumented(registry = REGISTRY, error_if = is_empty)]
    fn load(n: u8) -> Vec<u8> {
        vec![0; n.into()]
    }

    #[instrumented(registry = REGISTRY, ok_if = has_content)]
    fn lookup(n: u8) -> Option<u8> {
        (n > 0).then_some(n)
    }

    #[test]
    fn name_and_buckets() {
        pay();
        assert_eq!(calls!(REGISTRY, "checkout", "ok"), 1.0);
        let bucket = |le: &str| {
            REGISTRY.get_sample_value(
                "function_calls_duration_seconds_bucket",
                &[
                    ("function", "checkout"),
                    ("module", module_path!()),
                    ("result", "ok"),
                    ("le", le),
                ],
            )
        };
        assert_eq!(bucket("1"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(1.0));
        // Not one of the default bounds.
        assert_eq!(bucket("0.005"), None);
    }

    #[test]
    fn constant_labels() {
        invoice();
        let value = REGISTRY.get_sample_value(
            "function_calls_total",
            &[
                ("function", "invoice"),
                ("module", module_path!()),
                ("team", "billing"),
                ("tier", "1"),
                ("result", "ok"),
            ],
        );
        assert_eq!(value, Some(1.0));
    }

    #[test]
    fn a_registry_view_gives_its_prefix_and_labels() {
        refund();
        let value = PREFIXED.get_sample_value(
            "shop_function_calls_total",
            &[
                ("function", "refund"),
                ("module", module_path!()),
                ("service", "checkout"),
                ("result", "ok"),
            ],
        );
        assert_eq!(value, Some(1.0));
    }

    #[test]
    fn predicates_decide_the_result() {
        load(0);
        load(3);
        lookup(0);
        lookup(1);
        assert_eq!(calls!(REGISTRY, "load", "error"), 1.0);
        assert_eq!(calls!(REGISTRY, "load", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "lookup", "error"), 1.0);
        assert_eq!(calls!(REGISTRY, "lookup", "ok"), 1.0);
    }

    #[test]
    fn the_default_registry_is_the_global_one() {
        #[instrumented]
        fn global_fn() {}
        global_fn();
        assert_eq!(calls!(Registry::global(), "global_fn", "ok"), 1.0);
    }
}

mod http_handlers {
    use super::*;

    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

    #[instrumented(registry = REGISTRY)]
    async fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[instrumented(registry = REGISTRY)]
    async fn tuple(code: u16) -> (StatusCode, &'static str) {
        (StatusCode::from_u16(code).unwrap(), "body")
    }

    #[instrumented(registry = REGISTRY)]
    async fn response(code: u16) -> Response {
        (StatusCode::from_u16(code).unwrap(), "body").into_response()
    }

    #[instrumented(registry = REGISTRY)]
    async fn fallible(code: u16) -> Result<Response, std::io::Error> {
        if code == 0 {
            return Err(std::io::Error::other("no"));
        }
        Ok(StatusCode::from_u16(code).unwrap().into_response())
    }

    #[instrumented(registry = REGISTRY)]
    async fn opaque(code: u16) -> impl IntoResponse {
        (StatusCode::from_u16(code).unwrap(), "body")
    }

    #[tokio::test]
    async fn axum_responses_with_a_5xx_status_are_errors() {
        status(200).await;
        status(503).await;
        tuple(404).await;
        tuple(500).await;
        response(201).await;
        response(502).await;
        fallible(200).await.unwrap();
        fallible(500).await.unwrap();
        fallible(0).await.unwrap_err();
        opaque(200).await;
        opaque(500).await;
        for (name, ok, error) in [
            ("status", 1.0, 1.0),
            ("tuple", 1.0, 1.0),
            ("response", 1.0, 1.0),
            ("fallible", 1.0, 2.0),
            ("opaque", 1.0, 1.0),
        ] {
            assert_eq!(calls!(REGISTRY, name, "ok"), ok, "{name}");
            assert_eq!(calls!(REGISTRY, name, "error"), error, "{name}");
        }
    }

    #[instrumented(registry = REGISTRY)]
    async fn user(axum::extract::Path(id): axum::extract::Path<u32>) -> Result<String, StatusCode> {
        if id == 0 {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(format!("user {id}"))
    }

    #[tokio::test]
    async fn an_instrumented_axum_handler_serves() {
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;

        let app = axum::Router::new().route("/users/{id}", get(user));
        let response = app
            .oneshot(
                axum::http::Request::get("/users/7")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(calls!(REGISTRY, "user", "ok"), 1.0);
    }

    #[instrumented(registry = REGISTRY)]
    async fn actix_plain(code: u16) -> actix_web::HttpResponse {
        actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
            .finish()
    }

    #[instrumented(registry = REGISTRY)]
    #[actix_web::get("/outer/{id}")]
    async fn actix_outer(id: actix_web::web::Path<u32>) -> actix_web::HttpResponse {
        if *id == 0 {
            actix_web::HttpResponse::InternalServerError().finish()
        } else {
            actix_web::HttpResponse::Ok().body(format!("{id}"))
        }
    }

    #[actix_web::get("/inner/{id}")]
    #[instrumented(registry = REGISTRY)]
    async fn actix_inner(id: actix_web::web::Path<u32>) -> actix_web::Result<String> {
        if *id == 0 {
            return Err(actix_web::error::ErrorBadRequest("zero"));
        }
        Ok(format!("{id}"))
    }

    #[actix_web::test]
    async fn actix_responses_and_handlers() {
        use actix_web::{test, App};

        actix_plain(200).await;
        actix_plain(500).await;
        assert_eq!(calls!(REGISTRY, "actix_plain", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "actix_plain", "error"), 1.0);

        let app = test::init_service(App::new().service(actix_outer).service(actix_inner)).await;
        for uri in ["/outer/1", "/outer/0", "/inner/1", "/inner/0"] {
            test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        }
        assert_eq!(calls!(REGISTRY, "actix_outer", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "actix_outer", "error"), 1.0);
        assert_eq!(calls!(REGISTRY, "actix_inner", "ok"), 1.0);
        assert_eq!(calls!(REGISTRY, "actix_inner", "error"), 1.0);
    }
}
