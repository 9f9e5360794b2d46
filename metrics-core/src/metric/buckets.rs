//! [`Buckets`]: the bounds of a classic histogram's buckets, and the search that finds an
//! observation's bucket.

use std::sync::Arc;

use crate::error::Error;

/// The upper bounds of a histogram's buckets: non-empty, finite and strictly increasing.
/// The `+Inf` bucket is always added and is not listed here.
///
/// ```
/// use vitals_core::Buckets;
///
/// assert_eq!(Buckets::linear(1.0, 2.0, 3)?.as_slice(), &[1.0, 3.0, 5.0]);
/// assert_eq!(Buckets::exponential(0.01, 2.0, 4)?.as_slice(), &[0.01, 0.02, 0.04, 0.08]);
/// assert!(Buckets::new([0.5, 0.1]).is_err(), "not increasing");
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Buckets {
    pub(super) bounds: Arc<[f64]>,
    /// Each bound as the text formats write it, rendered once rather than at every scrape.
    pub(super) rendered: Arc<[Box<str>]>,
    /// Whether each series keeps its smallest and largest observation between two ticks of
    /// the windowed statistics (see [`window`](crate::window)).
    pub(crate) extremes: bool,
}

impl PartialEq for Buckets {
    fn eq(&self, other: &Self) -> bool {
        self.bounds == other.bounds && self.extremes == other.extremes
    }
}

impl Buckets {
    /// Latency buckets in seconds, OpenTelemetry's advice for HTTP servers:
    /// 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10.
    /// The default of every histogram.
    pub const LATENCY_SECONDS: &'static [f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];

    /// Buckets with the given upper bounds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBuckets`] when the bounds are empty, not finite or not strictly
    /// increasing.
    pub fn new(bounds: impl Into<Vec<f64>>) -> Result<Self, Error> {
        let bounds = bounds.into();
        check_bounds(&bounds)?;
        Ok(Self::from_checked(bounds.into()))
    }

    /// `count` buckets starting at `start`, each `width` above the last.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBuckets`] when `count` is zero or `width` is not positive.
    pub fn linear(start: f64, width: f64, count: usize) -> Result<Self, Error> {
        if width.is_nan() || width <= 0.0 {
            return Err(Error::InvalidBuckets {
                reason: format!("linear bucket width must be positive, not {width}"),
            });
        }
        #[allow(clippy::cast_precision_loss)]
        Self::new(
            (0..count)
                .map(|i| start + width * i as f64)
                .collect::<Vec<_>>(),
        )
    }

    /// `count` buckets starting at `start`, each `factor` times the last.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBuckets`] when `count` is zero, `start` is not positive or `factor` is
    /// not above 1.
    pub fn exponential(start: f64, factor: f64, count: usize) -> Result<Self, Error> {
        if start.is_nan() || start <= 0.0 || factor.is_nan() || factor <= 1.0 {
            return Err(Error::InvalidBuckets {
                reason: format!(
                    "exponential buckets need start > 0 and factor > 1, not {start} and {factor}"
                ),
            });
        }
        let mut bound = start;
        let bounds = (0..count)
            .map(|_| {
                let b = bound;
                bound *= factor;
                b
            })
            .collect::<Vec<_>>();
        Self::new(bounds)
    }

    /// The upper bounds.
    #[must_use]
    pub fn as_slice(&self) -> &[f64] {
        &self.bounds
    }

    /// The upper bounds, shared.
    pub(crate) fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    /// Each bound as the text formats write it.
    pub(crate) fn rendered(&self) -> &[Box<str>] {
        &self.rendered
    }

    fn from_checked(bounds: Arc<[f64]>) -> Self {
        let rendered = bounds
            .iter()
            .map(|&b| {
                let mut s = String::new();
                crate::util::fmt::write_f64(&mut s, b);
                s.into_boxed_str()
            })
            .collect();
        Self {
            bounds,
            rendered,
            extremes: false,
        }
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Self::from_checked(Self::LATENCY_SECONDS.into())
    }
}

pub(crate) fn check_bounds(bounds: &[f64]) -> Result<(), Error> {
    let invalid = |reason: String| Err(Error::InvalidBuckets { reason });
    if bounds.is_empty() {
        return invalid("at least one bucket bound is needed".to_owned());
    }
    if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
        return invalid(format!(
            "bound {b} is not finite (the +Inf bucket is always added)"
        ));
    }
    if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return invalid(format!(
            "bounds must be strictly increasing, but {} is followed by {}",
            w[0], w[1]
        ));
    }
    Ok(())
}

/// The index of the first bucket whose bound is not below `v`: the number of bounds below it.
/// NaN is above every bound, in the `+Inf` bucket.
#[inline]
pub(crate) fn bucket_index(bounds: &[f64], v: f64) -> usize {
    if v.is_nan() {
        return bounds.len();
    }
    if bounds.len() <= 32 {
        // Counting compares instead of searching: no branch to mispredict on random values, and
        // the compiler vectorises it. Faster than a binary search up to a few dozen bounds.
        bounds.iter().map(|&bound| usize::from(v > bound)).sum()
    } else {
        bounds.partition_point(|&bound| v > bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_and_searching_find_the_same_bucket() {
        let small: Vec<f64> = (0..14).map(|i| f64::from(i) * 0.5).collect();
        let large: Vec<f64> = (0..100).map(|i| f64::from(i) * 0.5).collect();
        for bounds in [&small, &large] {
            for tenth in -10..600 {
                let v = f64::from(tenth) / 10.0;
                let expected = bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len());
                assert_eq!(
                    bucket_index(bounds, v),
                    expected,
                    "{v} in {} bounds",
                    bounds.len()
                );
            }
            assert_eq!(bucket_index(bounds, f64::NAN), bounds.len());
            assert_eq!(bucket_index(bounds, f64::INFINITY), bounds.len());
            assert_eq!(bucket_index(bounds, f64::NEG_INFINITY), 0);
        }
    }

    #[test]
    fn bucket_validation_names_the_problem() {
        assert!(Buckets::new(Vec::<f64>::new()).is_err());
        let err = Buckets::new([1.0, f64::INFINITY]).unwrap_err().to_string();
        assert!(err.contains("inf"), "{err}");
        let err = Buckets::new([1.0, 1.0]).unwrap_err().to_string();
        assert!(err.contains("strictly increasing"), "{err}");
        assert!(Buckets::new([f64::NAN]).is_err());
        assert!(Buckets::linear(0.0, 0.0, 3).is_err());
        assert!(Buckets::linear(0.0, 1.0, 0).is_err());
        assert!(Buckets::exponential(0.0, 2.0, 3).is_err());
        assert!(Buckets::exponential(1.0, 1.0, 3).is_err());
        assert!(
            Buckets::exponential(1.0, 10.0, 400).is_err(),
            "overflows to +Inf"
        );
    }
}
