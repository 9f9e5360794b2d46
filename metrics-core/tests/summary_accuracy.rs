//! The summary's documented error bound, checked against exact quantiles of large samples from
//! skewed distributions: every reported quantile is within `α · |x|` of the true one, where `x`
//! is the observation of rank `⌊q · (n − 1)⌋` of the sorted window.

// Casts of test arithmetic: sample sizes and 53-bit fractions, exact in f64.
#![allow(clippy::cast_precision_loss)]

use std::time::Duration;

use vitals_core::Registry;

/// splitmix64: a small, well-mixed deterministic generator, so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

const QUANTILES: [f64; 11] = [
    0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0,
];
const SAMPLES: usize = 200_000;

fn distributions() -> Vec<(&'static str, Vec<f64>)> {
    let mut rng = Rng(42);
    let mut sample =
        |f: &mut dyn FnMut(&mut Rng) -> f64| (0..SAMPLES).map(|_| f(&mut rng)).collect::<Vec<_>>();
    vec![
        // Request latencies: a long right tail.
        (
            "lognormal(-3, 1.5)",
            sample(&mut |r| (-3.0 + 1.5 * r.normal()).exp()),
        ),
        // Heavy tail (the 80/20 Pareto): sizes, queue waits.
        ("pareto(1.16)", sample(&mut |r| r.unit().powf(-1.0 / 1.16))),
        (
            "exponential(mean 0.2)",
            sample(&mut |r| -0.2 * r.unit().ln()),
        ),
        // Two modes, cache hits and misses, with some zeros and negatives (clock skew).
        (
            "bimodal with zeros and negatives",
            sample(&mut |r| match r.next_u64() % 10 {
                0 => 0.0,
                1 => -r.unit() * 0.01,
                2..=6 => 0.001 + 0.0005 * r.normal().abs(),
                _ => 0.2 + 0.05 * r.normal().abs(),
            }),
        ),
    ]
}

fn exact(sorted: &[f64], q: f64) -> f64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
    sorted[rank]
}

fn check_bound(accuracy: f64) {
    for (name, values) in distributions() {
        let registry = Registry::new();
        let summary = registry
            .summary("observed", "Observations.")
            .quantiles(&QUANTILES)
            .accuracy(accuracy)
            .max_age(Duration::from_secs(3600))
            .register()
            .unwrap();
        for &v in &values {
            summary.observe(v);
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let mut worst: f64 = 0.0;
        for q in QUANTILES {
            let estimate = registry
                .get_sample_value("observed", &[("quantile", &q.to_string())])
                .unwrap();
            let truth = exact(&sorted, q);
            let error = (estimate - truth).abs();
            // Values within 1e-9 of zero are reported as zero (documented).
            let bound = accuracy * truth.abs() * (1.0 + 1e-9) + 1e-9;
            assert!(
                error <= bound,
                "{name}, α = {accuracy}: quantile {q} is {estimate}, exact {truth}, error {error} > {bound}"
            );
            if truth.abs() > 1e-9 {
                worst = worst.max(error / truth.abs());
            }
        }
        assert!(
            worst > 0.0,
            "{name}: a sketch that is never off is suspicious"
        );
        assert_eq!(summary.count(), SAMPLES as u64);
        let sum: f64 = values.iter().sum();
        assert!((summary.sum() - sum).abs() <= 1e-6 * sum.abs().max(1.0));
    }
}

#[test]
fn quantiles_are_within_one_percent_by_default() {
    check_bound(0.01);
}

#[test]
fn quantiles_are_within_a_tenth_of_a_percent_when_asked() {
    check_bound(0.001);
}

#[test]
fn quantiles_are_within_five_percent_at_coarse_accuracy() {
    check_bound(0.05);
}
