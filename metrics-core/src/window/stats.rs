//! What a window answers about a selection of series: [`Stats`].

use std::time::Duration;

use crate::kind::MetricKind;

use super::store::{is_gauge, Ring, State, Tracked, NO_EXTREMES};

/// The slots of one ring that a window covers.
#[derive(Debug, Clone)]
pub(super) struct Span {
    pub(super) coarse: bool,
    /// Ring indices, newest first.
    pub(super) slots: Vec<usize>,
    /// Seconds from the start of the oldest slot to the end of the newest.
    pub(super) seconds: f64,
}

impl Span {
    /// The slots of the ring that hold the last `length`: those that began no more than
    /// `length` (plus half a step, for a ticker a little late) before the newest slot ended.
    pub(super) fn of(state: &State, length: Duration, coarse: bool) -> Self {
        let ring: &Ring = if coarse { &state.coarse } else { &state.fine };
        let mut slots = Vec::new();
        let mut seconds = 0.0;
        if let Some(newest) = ring.slot(0) {
            let end = ring.ends[newest];
            let limit = length.as_secs_f64() + ring.step.as_secs_f64() / 2.0;
            let mut back = 0;
            while let Some(slot) = ring.slot(back) {
                let start = ring.starts[slot];
                if end - start > limit {
                    break;
                }
                seconds = end - start;
                slots.push(slot);
                back += 1;
            }
        }
        Self {
            coarse,
            slots,
            seconds,
        }
    }
}

/// What happened in a window to the series a selection matched, added together: for a
/// counter its increase, for a histogram or summary its observations (count, sum, average,
/// and for histograms percentiles from the bucket counts), for a gauge its values at the ticks
/// (count of ticks, average, min, max, last).
///
/// Rates divide by [`covered`](Self::covered), the time the window's slots span: less than the
/// window asked for while the rings are filling up, so that a partly empty window reports
/// the rate of what it saw rather than a diluted one.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub(super) kind: Option<MetricKind>,
    pub(super) series: usize,
    pub(super) covered: f64,
    pub(super) count: f64,
    pub(super) sum: f64,
    pub(super) extremes: Option<(f64, f64)>,
    pub(super) last: Option<f64>,
    pub(super) bounds: Vec<f64>,
    pub(super) buckets: Vec<u64>,
}

impl Stats {
    pub(super) fn empty(covered: f64) -> Self {
        Self {
            kind: None,
            series: 0,
            covered,
            count: 0.0,
            sum: 0.0,
            extremes: None,
            last: None,
            bounds: Vec::new(),
            buckets: Vec::new(),
        }
    }

    /// The type of the matched series, or `None` when the selection matched nothing.
    #[must_use]
    pub fn kind(&self) -> Option<MetricKind> {
        self.kind
    }

    /// How many tracked series the selection matched.
    #[must_use]
    pub fn series(&self) -> usize {
        self.series
    }

    /// The time the window's slots span: the window asked for, or less when the rings do not
    /// hold that much yet (zero before the second tick).
    #[must_use]
    pub fn covered(&self) -> Duration {
        Duration::try_from_secs_f64(self.covered).unwrap_or_default()
    }

    /// A counter's increase; a histogram's or summary's number of observations; the number
    /// of ticks at which a gauge had a value.
    #[must_use]
    pub fn count(&self) -> f64 {
        self.count
    }

    /// A counter's increase; the sum of a histogram's or summary's observations; the sum of
    /// a gauge's values at the ticks.
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `sum / count`: the average observation, or a gauge's average value; `None` when the
    /// count is zero.
    #[must_use]
    pub fn average(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// Per second over [`covered`](Self::covered): a counter's increase, or a histogram's or
    /// summary's observations. `None` for gauges, and when nothing is covered yet.
    #[must_use]
    pub fn rate(&self) -> Option<f64> {
        let gauge = self.kind.is_some_and(is_gauge);
        (!gauge && self.covered > 0.0).then(|| self.count / self.covered)
    }

    /// The smallest observation of a histogram registered with
    /// [`window_extremes(true)`](crate::MetricBuilder::window_extremes), or a gauge's
    /// smallest value at the ticks; `None` otherwise, or when there were none.
    #[must_use]
    pub fn min(&self) -> Option<f64> {
        self.extremes.map(|(min, _)| min)
    }

    /// The largest observation or gauge value, as [`min`](Self::min).
    #[must_use]
    pub fn max(&self) -> Option<f64> {
        self.extremes.map(|(_, max)| max)
    }

    /// A gauge's value at the newest tick of the window (added over the matched series);
    /// `None` for other types.
    #[must_use]
    pub fn last(&self) -> Option<f64> {
        self.last
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) of a histogram's observations, from the bucket counts
    /// as Prometheus's `histogram_quantile` computes it: the bucket that holds the rank,
    /// then linear interpolation within it (from 0 for the first bucket when its bound is
    /// positive). The true quantile lies in the same bucket, so the error is less than that
    /// bucket's width; a rank in the `+Inf` bucket answers the highest finite bound. With
    /// extremes kept, the answer is clamped to `[min, max]`, which also bounds the first and
    /// last buckets. `None` for other types, for `q` outside `[0, 1]`, and when there were no
    /// observations.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.bounds, &self.buckets, q, self.extremes)
    }

    /// The histogram's bounds and the number of observations in each bucket in the window
    /// (not cumulative; `+Inf` last). Empty for other types.
    #[must_use]
    pub fn buckets(&self) -> (&[f64], &[u64]) {
        (&self.bounds, &self.buckets)
    }

    /// Adds one series' slots.
    pub(super) fn add(&mut self, series: &Tracked, span: &Span) {
        if self.kind.is_some_and(|k| k != series.kind) {
            return;
        }
        self.kind = Some(series.kind);
        self.series += 1;
        let lanes = series.lanes(span.coarse);
        if is_gauge(series.kind) {
            let mut extremes = self.extremes.unwrap_or(NO_EXTREMES);
            for &slot in &span.slots {
                let v = lanes.values[slot];
                if !v.is_nan() {
                    self.count += 1.0;
                    self.sum += v;
                    extremes = (extremes.0.min(v), extremes.1.max(v));
                }
            }
            self.extremes = (extremes.0 <= extremes.1).then_some(extremes);
            if let Some(&newest) = span.slots.first() {
                let v = lanes.values[newest];
                if !v.is_nan() {
                    self.last = Some(self.last.unwrap_or(0.0) + v);
                }
            }
            return;
        }
        let width = series.width;
        let histogram = series.kind == MetricKind::Histogram;
        if histogram && self.buckets.is_empty() {
            self.bounds = series.bounds.to_vec();
            self.buckets = vec![0; width];
        }
        // A histogram whose bounds differ from the first one's adds to the count and sum
        // but not to the buckets.
        let same_bounds = histogram && *series.bounds == *self.bounds;
        for &slot in &span.slots {
            self.sum += lanes.values[slot];
            let counts = &lanes.counts[slot * width..(slot + 1) * width];
            if width == 0 {
                self.count += lanes.values[slot];
            } else {
                self.count += counts.iter().map(|&c| f64::from(c)).sum::<f64>();
            }
            if same_bounds {
                for (total, &c) in self.buckets.iter_mut().zip(counts) {
                    *total += u64::from(c);
                }
            }
            if let Some(extremes) = &lanes.extremes {
                let (lo, hi) = extremes[slot];
                let (min, max) = self.extremes.unwrap_or(NO_EXTREMES);
                let merged = (min.min(lo), max.max(hi));
                self.extremes = (merged.0 <= merged.1).then_some(merged);
            }
        }
    }
}

/// The `q`-quantile of non-cumulative bucket counts (`+Inf` last); see [`Stats::quantile`].
pub(super) fn quantile(
    bounds: &[f64],
    buckets: &[u64],
    q: f64,
    extremes: Option<(f64, f64)>,
) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) || buckets.len() != bounds.len() + 1 {
        return None;
    }
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let rank = q * total as f64;
    let mut below = 0u64;
    let mut estimate = bounds.last().copied();
    for (i, &count) in buckets.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let reached = (below + count) as f64 >= rank && count > 0;
        if reached {
            estimate = match bounds.get(i) {
                None => bounds.last().copied(),
                Some(&upper) => {
                    let lower = match i {
                        0 if upper > 0.0 => 0.0,
                        0 => upper,
                        _ => bounds[i - 1],
                    };
                    #[allow(clippy::cast_precision_loss)]
                    let within = (rank - below as f64) / count as f64;
                    Some(lower + (upper - lower) * within)
                }
            };
            break;
        }
        below += count;
    }
    estimate.map(|v| match extremes {
        Some((min, max)) => v.clamp(min, max),
        None => v,
    })
}
