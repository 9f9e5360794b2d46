//! The cost of `#[instrumented]` per call, next to autometrics' `#[autometrics]` on the same
//! function, in one process and one run: `cargo bench -p vitals-benches --bench instrumented`.
//! BENCHMARKS.md reports the overheads (instrumented minus plain) as a ratio.
//!
//! Each function is `#[inline(never)]` and does a little arithmetic, so that the plain call is
//! a real call and the difference is what the attribute adds.

use std::hint::black_box;

use autometrics::autometrics;
use criterion::{criterion_group, criterion_main, Criterion};
use vitals_core::instrumented;

#[derive(Debug)]
struct Odd;

#[inline(never)]
fn plain(x: u64) -> u64 {
    x.wrapping_mul(31).rotate_left(7)
}

#[instrumented]
#[inline(never)]
fn ours(x: u64) -> u64 {
    x.wrapping_mul(31).rotate_left(7)
}

#[autometrics]
#[inline(never)]
fn theirs(x: u64) -> u64 {
    x.wrapping_mul(31).rotate_left(7)
}

#[inline(never)]
fn plain_result(x: u64) -> Result<u64, Odd> {
    if x % 1024 == 1023 {
        return Err(Odd);
    }
    Ok(x.wrapping_mul(31))
}

#[instrumented]
#[inline(never)]
fn ours_result(x: u64) -> Result<u64, Odd> {
    if x % 1024 == 1023 {
        return Err(Odd);
    }
    Ok(x.wrapping_mul(31))
}

#[autometrics]
#[inline(never)]
fn theirs_result(x: u64) -> Result<u64, Odd> {
    if x % 1024 == 1023 {
        return Err(Odd);
    }
    Ok(x.wrapping_mul(31))
}

fn calls(c: &mut Criterion) {
    let autometrics = autometrics::settings::AutometricsSettings::builder().init();
    let mut group = c.benchmark_group("function call");
    let mut i = 0_u64;
    group.bench_function("plain", |b| {
        b.iter(|| {
            i += 1;
            plain(black_box(i))
        })
    });
    group.bench_function("#[instrumented]", |b| {
        b.iter(|| {
            i += 1;
            ours(black_box(i))
        })
    });
    group.bench_function("#[autometrics]", |b| {
        b.iter(|| {
            i += 1;
            theirs(black_box(i))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("function call returning Result");
    group.bench_function("plain", |b| {
        b.iter(|| {
            i += 1;
            plain_result(black_box(i)).is_ok()
        })
    });
    group.bench_function("#[instrumented]", |b| {
        b.iter(|| {
            i += 1;
            ours_result(black_box(i)).is_ok()
        })
    });
    group.bench_function("#[autometrics]", |b| {
        b.iter(|| {
            i += 1;
            theirs_result(black_box(i)).is_ok()
        })
    });
    group.finish();

    // The same function called on two threads at once: what sharing a function's metrics
    // between cores costs (time per call on each thread).
    let mut group = c.benchmark_group("function call on 2 threads");
    group.bench_function("plain", |b| on_two_threads(b, plain));
    group.bench_function("#[instrumented]", |b| on_two_threads(b, ours));
    group.bench_function("#[autometrics]", |b| on_two_threads(b, theirs));
    group.finish();

    // Both recorded what they were asked to: a call that records nothing would be fast.
    let calls = vitals_core::Registry::global().get_sample_value(
        "function_calls_total",
        &[
            ("function", "ours"),
            ("module", module_path!()),
            ("result", "ok"),
        ],
    );
    assert!(
        calls.unwrap_or(0.0) > 0.0,
        "#[instrumented] recorded no calls"
    );
    let mut theirs = String::new();
    prometheus_client_0_22::encoding::text::encode(
        &mut theirs,
        autometrics.prometheus_client_registry(),
    )
    .expect("encoding to a String");
    assert!(
        theirs.contains("function=\"theirs\""),
        "#[autometrics] recorded no calls"
    );
}

/// Calls `f` `iters` times on each of two threads at once; the time is the slower thread's.
fn on_two_threads(b: &mut criterion::Bencher<'_>, f: fn(u64) -> u64) {
    b.iter_custom(|iters| {
        vitals_benches::time_on_threads(iters, 2, |i| {
            black_box(f(i));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = calls
}
criterion_main!(benches);
