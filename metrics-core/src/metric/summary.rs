//! Summaries: client-side quantiles over a sliding time window, with a guaranteed error bound.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::kind::MetricKind;
use crate::metric::{sealed::Sealed, Metric, Scratch, SummaryRef, ValueRef};

/// Magnitudes below this are counted in the zero bucket.
const MIN_INDEXABLE: f64 = 1e-9;
/// The fewest buckets one sign of one sketch may keep.
const MIN_BUCKET_CAP: usize = 4096;
/// The ratio of magnitudes a sketch keeps within the bound, whatever its accuracy.
const KEPT_RANGE: f64 = 1e18;
/// The finest relative accuracy a summary may ask for (`MetricBuilder::accuracy`): 0.01 %. Its sketches keep at most
/// about 207,000 buckets (1.6 MiB) per age bucket and sign, and every bucket index of a
/// double fits an `i32` with room to spare.
pub const MIN_ACCURACY: f64 = 1e-4;

/// What a summary series is built from; set through the registration builder.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryConfig {
    pub(crate) quantiles: Arc<[f64]>,
    pub(crate) max_age: Duration,
    pub(crate) age_buckets: u32,
    pub(crate) accuracy: f64,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            quantiles: Arc::from([0.5, 0.9, 0.99]),
            max_age: Duration::from_secs(600),
            age_buckets: 5,
            accuracy: 0.01,
        }
    }
}

impl SummaryConfig {
    pub(crate) fn set_quantiles(&mut self, quantiles: &[f64]) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidSummary { reason });
        if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return invalid(format!("quantile {q} is outside [0, 1]"));
        }
        if let Some(w) = quantiles.windows(2).find(|w| w[0] >= w[1]) {
            return invalid(format!(
                "quantiles must be strictly increasing, but {} is followed by {}",
                w[0], w[1]
            ));
        }
        self.quantiles = quantiles.into();
        Ok(())
    }

    pub(crate) fn set_max_age(&mut self, max_age: Duration) -> Result<(), Error> {
        if max_age.is_zero() {
            return Err(Error::InvalidSummary {
                reason: "max_age must be longer than zero".to_owned(),
            });
        }
        self.max_age = max_age;
        Ok(())
    }

    pub(crate) fn set_age_buckets(&mut self, age_buckets: u32) -> Result<(), Error> {
        if !(1..=1000).contains(&age_buckets) {
            return Err(Error::InvalidSummary {
                reason: format!("age_buckets must be between 1 and 1000, not {age_buckets}"),
            });
        }
        self.age_buckets = age_buckets;
        Ok(())
    }

    pub(crate) fn set_accuracy(&mut self, accuracy: f64) -> Result<(), Error> {
        if accuracy.is_nan() || !(MIN_ACCURACY..1.0).contains(&accuracy) {
            return Err(Error::InvalidSummary {
                reason: format!(
                    "relative accuracy must be at least {MIN_ACCURACY} and below 1, not \
                     {accuracy}"
                ),
            });
        }
        self.accuracy = accuracy;
        Ok(())
    }
}

/// A summary: quantiles of recent observations, computed in the process, plus the sum and
/// count of all observations.
///
/// # How the quantiles are computed, and how wrong they can be
///
/// Each summary series keeps a ring of `age_buckets` sketches. Each sketch covers
/// `max_age / age_buckets` of time, so the window a scrape reads covers between
/// `max_age · (age_buckets − 1) / age_buckets` and `max_age` of the most recent
/// observations. When a sketch's time is up, the oldest one is cleared and reused.
///
/// A sketch counts observations in logarithmic buckets: with relative accuracy `α`, bucket `i`
/// holds the values in `(γ^(i−1), γ^i]` with `γ = (1 + α) / (1 − α)`, and reports them as
/// `2γ^i / (γ + 1)`. A value's bucket is exact, so the bucket of the `q`-quantile is found
/// exactly, and the reported value `x̂` is within the bound of the true quantile `x`:
///
/// > `|x̂ − x| ≤ α · |x|`, where `x` is the observation of rank `⌊q · (n − 1)⌋` (counting from
/// > zero) among the `n` observations in the window, sorted.
///
/// The bound holds for any distribution, skewed or not, and does not weaken with `n`. It has
/// two documented exceptions: values closer to zero than `1e-9` are counted as zero (they are
/// reported as 0, an absolute error below `1e-9`), and when the magnitudes of one sign in one
/// age bucket span a ratio above 10^18 (10^35 at the default `α = 0.01`), the smallest of them
/// are merged and lose the bound. That cap also bounds memory: at most
/// `max(4096, ln(10^18) / ln γ)` counters per age bucket and sign (4096 at `α = 0.01`, about
/// 20,700 at `α = 0.001`, about 207,000 at the finest accuracy allowed,
/// [`MIN_SUMMARY_ACCURACY`](crate::MIN_SUMMARY_ACCURACY) `= 0.0001`), allocated only as far as
/// the observed range needs.
///
/// The default accuracy is 1% (`α = 0.01`), the default window 10 minutes in 5 age buckets,
/// and the default quantiles 0.5, 0.9 and 0.99.
///
/// `_sum` and `_count` cover every observation since the series was created, as in every
/// Prometheus client. Observing takes a short, uncontended mutex (the ring has to rotate under
/// it); prefer a [`Histogram`](crate::Histogram) on the hottest paths, where it is also the
/// only one that can be aggregated across instances.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use vitals_core::Registry;
///
/// let registry = Registry::new();
/// let sizes = registry
///     .summary("upload_size_bytes", "Size of uploads.")
///     .quantiles(&[0.5, 0.99])
///     .max_age(Duration::from_secs(60))
///     .register()?;
/// for size in 1..=1000 {
///     sizes.observe(f64::from(size));
/// }
/// let median = registry.get_sample_value("upload_size_bytes", &[("quantile", "0.5")]).unwrap();
/// assert!((median - 500.0).abs() <= 0.01 * 500.0, "within 1% of the true median");
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Summary {
    core: Arc<Mutex<Window>>,
    /// In multi-process mode, the count and sum in this process's file (prometheus_client
    /// keeps no quantiles there), written beside the window.
    #[cfg(all(feature = "multiprocess", unix))]
    mapped: Option<[crate::multiprocess::Cell; 2]>,
}

impl Summary {
    /// Records one observation. NaN is counted in `_count` only; ±Inf is counted in `_count`
    /// and the quantiles (as the largest magnitude) but left out of `_sum`, which it would
    /// otherwise ruin for good.
    pub fn observe(&self, v: f64) {
        self.observe_at(v, Instant::now());
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn observe_at(&self, v: f64, now: Instant) {
        let mut window = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        window.rotate(now);
        window.count += 1;
        if !v.is_nan() {
            if v.is_finite() {
                window.sum += v;
            }
            let head = window.head;
            window.sketches[head].add(v);
        }
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some([count, sum]) = self.mapped {
            count.add(1.0);
            if v.is_finite() {
                sum.add(v);
            }
        }
    }

    /// The current estimate of quantile `q` over the window, NaN when the window is empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> f64 {
        self.quantile_at(q, Instant::now())
    }

    pub(crate) fn quantile_at(&self, q: f64, now: Instant) -> f64 {
        let mut window = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        window.rotate(now);
        window.quantile(q)
    }

    /// The number of observations since the series was created.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.core
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count
    }

    /// The sum of observations since the series was created.
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.core.lock().unwrap_or_else(PoisonError::into_inner).sum
    }
}

impl Metric for Summary {}

impl Sealed for Summary {
    type Config = SummaryConfig;
    const KIND: MetricKind = MetricKind::Summary;

    fn create(config: &SummaryConfig) -> Self {
        Self {
            core: Arc::new(Mutex::new(Window::new(config, Instant::now()))),
            #[cfg(all(feature = "multiprocess", unix))]
            mapped: None,
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped(config: &SummaryConfig, series: &crate::multiprocess::Series<'_>) -> Self {
        use crate::multiprocess::FileKind;
        let cell = |suffix| series.cell(FileKind::Summary, suffix, None);
        Self {
            core: Arc::new(Mutex::new(Window::new(config, Instant::now()))),
            mapped: cell("_count").zip(cell("_sum")).map(|(c, s)| [c, s]),
        }
    }

    fn reset(&self, config: &SummaryConfig) {
        // In multi-process mode the file's count and sum stay, so that merged totals never go
        // back.
        *self.core.lock().unwrap_or_else(PoisonError::into_inner) =
            Window::new(config, Instant::now());
    }

    fn read<'a>(&'a self, config: &'a SummaryConfig, scratch: &'a mut Scratch) -> ValueRef<'a> {
        let mut window = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        window.rotate(Instant::now());
        scratch.quantiles.clear();
        for &q in &*config.quantiles {
            scratch.quantiles.push((q, window.quantile(q)));
        }
        ValueRef::Summary(SummaryRef {
            quantiles: &scratch.quantiles,
            sum: window.sum,
            count: window.count,
            created: Some(window.created),
        })
    }
}

/// The ring of sketches of one series, with its all-time sum and count.
#[derive(Debug)]
struct Window {
    sketches: Box<[Sketch]>,
    head: usize,
    head_start: Instant,
    slice: Duration,
    count: u64,
    sum: f64,
    /// When the series was created, in seconds since the Unix epoch.
    created: f64,
}

impl Window {
    fn new(config: &SummaryConfig, now: Instant) -> Self {
        let sketch = Sketch::new(config.accuracy);
        Self {
            sketches: vec![sketch; config.age_buckets as usize].into(),
            head: 0,
            head_start: now,
            slice: (config.max_age / config.age_buckets).max(Duration::from_nanos(1)),
            count: 0,
            sum: 0.0,
            created: crate::util::clock::now_seconds(),
        }
    }

    /// Moves the head forward by the slices that have passed, clearing the ones it reuses.
    fn rotate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.head_start);
        if elapsed < self.slice {
            return;
        }
        let steps = elapsed.as_nanos() / self.slice.as_nanos();
        let len = self.sketches.len();
        let clear = usize::try_from(steps).map_or(len, |s| s.min(len));
        for _ in 0..clear {
            self.head = (self.head + 1) % len;
            self.sketches[self.head].clear();
        }
        let advance = u64::try_from(self.slice.as_nanos() * steps).unwrap_or(u64::MAX);
        self.head_start = self
            .head_start
            .checked_add(Duration::from_nanos(advance))
            .unwrap_or(now);
    }

    fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.sketches.iter().map(Sketch::count).sum();
        if total == 0 {
            return f64::NAN;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = (q.clamp(0.0, 1.0) * (total - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        let gamma = self.sketches[0].gamma;
        if let Some((lo, hi)) = merged_range(self.sketches.iter().map(|s| &s.negative)) {
            for index in (lo..=hi).rev() {
                seen += self
                    .sketches
                    .iter()
                    .map(|s| s.negative.at(index))
                    .sum::<u64>();
                if seen > rank {
                    return -representative(index, gamma);
                }
            }
        }
        seen += self.sketches.iter().map(|s| s.zero).sum::<u64>();
        if seen > rank {
            return 0.0;
        }
        if let Some((lo, hi)) = merged_range(self.sketches.iter().map(|s| &s.positive)) {
            for index in lo..=hi {
                seen += self
                    .sketches
                    .iter()
                    .map(|s| s.positive.at(index))
                    .sum::<u64>();
                if seen > rank {
                    return representative(index, gamma);
                }
            }
        }
        f64::NAN
    }
}

fn merged_range<'a>(stores: impl Iterator<Item = &'a Store>) -> Option<(i32, i32)> {
    stores
        .filter_map(Store::range)
        .reduce(|(lo, hi), (l, h)| (lo.min(l), hi.max(h)))
}

/// The value reported for bucket `index`: the point whose relative distance to both ends of
/// `(γ^(index−1), γ^index]` is the same, `α`.
fn representative(index: i32, gamma: f64) -> f64 {
    2.0 * gamma.powi(index) / (gamma + 1.0)
}

/// Logarithmic buckets for positive values, negative values (by magnitude) and zero.
#[derive(Debug, Clone)]
struct Sketch {
    gamma: f64,
    ln_gamma: f64,
    max_buckets: usize,
    positive: Store,
    negative: Store,
    zero: u64,
}

impl Sketch {
    fn new(accuracy: f64) -> Self {
        let gamma = (1.0 + accuracy) / (1.0 - accuracy);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let needed = (KEPT_RANGE.ln() / gamma.ln()).ceil() as usize;
        Self {
            gamma,
            ln_gamma: gamma.ln(),
            // At most about 207,000, at the finest accuracy allowed.
            max_buckets: needed.max(MIN_BUCKET_CAP),
            positive: Store::default(),
            negative: Store::default(),
            zero: 0,
        }
    }

    fn add(&mut self, v: f64) {
        let magnitude = v.abs();
        if magnitude < MIN_INDEXABLE {
            self.zero += 1;
            return;
        }
        let index = self.index(magnitude);
        if v > 0.0 {
            self.positive.add(index, self.max_buckets);
        } else {
            self.negative.add(index, self.max_buckets);
        }
    }

    /// `⌈log_γ(v)⌉`, corrected for rounding so that `v` lies in `(γ^(i−1), γ^i]`.
    #[allow(clippy::cast_possible_truncation)]
    fn index(&self, magnitude: f64) -> i32 {
        // Infinite magnitudes clamp to the last representable bucket.
        let magnitude = magnitude.min(f64::MAX);
        let mut index = (magnitude.ln() / self.ln_gamma).ceil() as i32;
        if self.gamma.powi(index) < magnitude {
            index += 1;
        } else if self.gamma.powi(index - 1) >= magnitude {
            index -= 1;
        }
        index
    }

    fn count(&self) -> u64 {
        self.positive.total + self.negative.total + self.zero
    }

    fn clear(&mut self) {
        self.positive.clear();
        self.negative.clear();
        self.zero = 0;
    }
}

/// Counts for a contiguous range of bucket indexes, at most the sketch's cap of them.
#[derive(Debug, Clone, Default)]
struct Store {
    offset: i32,
    counts: Vec<u64>,
    total: u64,
}

impl Store {
    fn range(&self) -> Option<(i32, i32)> {
        if self.total == 0 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        Some((self.offset, self.offset + self.counts.len() as i32 - 1))
    }

    fn at(&self, index: i32) -> u64 {
        usize::try_from(index - self.offset)
            .ok()
            .and_then(|i| self.counts.get(i))
            .copied()
            .unwrap_or(0)
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    fn add(&mut self, index: i32, max_buckets: usize) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        }
        let lo = self.offset;
        let hi = lo + self.counts.len() as i32 - 1;
        if index < lo || index > hi {
            self.extend(lo.min(index), hi.max(index), max_buckets);
        }
        // After extending, an index below the kept range has been merged into its lowest bucket.
        let slot = usize::try_from(index - self.offset).unwrap_or(0);
        self.counts[slot] += 1;
        self.total += 1;
    }

    /// Grows the range to `[lo, hi]`, merging the lowest buckets when it would pass the cap.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss
    )]
    fn extend(&mut self, lo: i32, hi: i32, max_buckets: usize) {
        let lo = lo.max(hi - max_buckets as i32 + 1);
        let mut counts = vec![0u64; (hi - lo + 1) as usize];
        for (i, &c) in self.counts.iter().enumerate() {
            let index = (self.offset + i as i32).max(lo);
            counts[(index - lo) as usize] += c;
        }
        self.offset = lo;
        self.counts = counts;
    }

    fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(config: &SummaryConfig) -> Summary {
        Summary::create(config)
    }

    #[test]
    fn infinite_observations_are_counted_but_kept_out_of_the_sum() {
        let s = summary(&SummaryConfig::default());
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.5, 0.5] {
            s.observe(v);
        }
        assert_eq!(s.count(), 5);
        assert_eq!(s.sum(), 2.0, "the sum of the finite observations");
        assert!(s.quantile(1.0) > 1e300, "the largest observation was +Inf");
    }

    #[test]
    fn accuracy_finer_than_the_bound_is_refused_so_memory_stays_bounded() {
        let mut c = SummaryConfig::default();
        assert!(c.set_accuracy(1e-9).is_err());
        assert!(c.set_accuracy(MIN_ACCURACY / 2.0).is_err());
        c.set_accuracy(MIN_ACCURACY).unwrap();
        // The finest accuracy allowed, across the whole range of doubles: no overflow, and the
        // store stays within its cap.
        let s = summary(&c);
        for v in [1e-9, 1e300, f64::INFINITY, f64::MAX, 2e-9] {
            s.observe(v);
        }
        let window = s.core.lock().unwrap();
        let store = &window.sketches[window.head].positive;
        assert!(store.counts.len() <= window.sketches[window.head].max_buckets);
        assert!(
            store.counts.len() * 8 <= 2 << 20,
            "{} buckets",
            store.counts.len()
        );
    }

    #[test]
    fn an_empty_window_reports_nan() {
        let s = summary(&SummaryConfig::default());
        assert!(s.quantile(0.5).is_nan());
    }

    #[test]
    fn observations_expire_after_max_age_but_sum_and_count_stay() {
        let mut config = SummaryConfig::default();
        config.set_max_age(Duration::from_secs(10)).unwrap();
        config.set_age_buckets(5).unwrap();
        let s = summary(&config);
        let t0 = Instant::now();
        s.observe_at(100.0, t0);
        let q = s.quantile_at(0.5, t0 + Duration::from_secs(7));
        assert!(
            (q - 100.0).abs() <= 1.0,
            "still in the window after 7 s: {q}"
        );
        s.observe_at(5.0, t0 + Duration::from_secs(7));
        assert!(s.quantile_at(0.0, t0 + Duration::from_secs(11)) < 6.0);
        let q = s.quantile_at(1.0, t0 + Duration::from_secs(11));
        assert!((q - 5.0).abs() <= 0.05, "100 expired after 10 s: {q}");
        assert!(s.quantile_at(0.5, t0 + Duration::from_secs(30)).is_nan());
        assert_eq!(s.count(), 2);
        assert_eq!(s.sum(), 105.0);
    }

    #[test]
    fn negative_zero_and_positive_values_keep_their_order() {
        let s = summary(&SummaryConfig::default());
        for v in [-100.0, -1.0, 0.0, 0.0, 1.0, 100.0, 1e-12] {
            s.observe(v);
        }
        let near = |got: f64, want: f64| (got - want).abs() <= 0.01 * want.abs() + 1e-9;
        assert!(near(s.quantile(0.0), -100.0));
        assert!(near(s.quantile(1.0 / 6.0), -1.0));
        assert_eq!(s.quantile(0.5), 0.0);
        assert!(near(s.quantile(5.0 / 6.0), 1.0));
        assert!(near(s.quantile(1.0), 100.0));
    }

    #[test]
    fn values_spread_past_the_bucket_cap_keep_the_bound_for_the_largest() {
        let s = summary(&SummaryConfig::default());
        // 1e-8 to 1e300 spans about 35,000 buckets at 1%: far past the cap of 4096.
        for exponent in -8..=300 {
            s.observe(10f64.powi(exponent));
        }
        let q = s.quantile(1.0);
        assert!((q - 1e300).abs() <= 0.01 * 1e300, "{q}");
        assert!(
            s.quantile(0.0) > 0.0,
            "merged low buckets still report a positive value"
        );
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut c = SummaryConfig::default();
        assert!(c
            .set_quantiles(&[0.5, 1.5])
            .unwrap_err()
            .to_string()
            .contains("1.5"));
        assert!(c.set_quantiles(&[0.9, 0.5]).is_err());
        assert!(c.set_max_age(Duration::ZERO).is_err());
        assert!(c.set_age_buckets(0).is_err());
        assert!(c.set_accuracy(0.0).is_err());
        assert!(c.set_accuracy(f64::NAN).is_err());
        assert_eq!(
            c,
            SummaryConfig::default(),
            "refused settings change nothing"
        );
    }
}
