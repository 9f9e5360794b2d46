//! Exemplars: a reference from a counter increment or a histogram observation to data outside
//! the metrics, such as the trace of the request that was measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::kind::MetricKind;

/// The most UTF-8 characters an exemplar's label names and values may hold together, as the
/// OpenMetrics specification sets it.
pub const EXEMPLAR_MAX_CHARS: usize = 128;

/// An exemplar as exposed: its labels, the value it was recorded with and when, in seconds
/// since the Unix epoch. Exposed in the OpenMetrics format only; the Prometheus text format has
/// no place for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<f64>,
}

impl Exemplar {
    /// Checks the labels and builds an exemplar for `value`, stamped with the current time.
    pub(crate) fn new(labels: &[(&str, &str)], value: f64) -> Result<Self, Error> {
        crate::validate::label_names(labels.iter().map(|&(k, _)| k), MetricKind::Unknown)?;
        let chars: usize = labels
            .iter()
            .map(|(k, v)| k.chars().count() + v.chars().count())
            .sum();
        if chars > EXEMPLAR_MAX_CHARS {
            return Err(Error::InvalidExemplar {
                reason: format!(
                    "its label names and values hold {chars} characters, more than the \
                     {EXEMPLAR_MAX_CHARS} OpenMetrics allows"
                ),
            });
        }
        Ok(Self {
            labels: labels
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            value,
            timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64()),
        })
    }

    /// The exemplar's labels.
    #[must_use]
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The value recorded with it: the increment of a counter, the observation of a histogram.
    #[must_use]
    pub fn value(&self) -> f64 {
        self.value
    }

    /// When it was recorded, in seconds since the Unix epoch.
    #[must_use]
    pub fn timestamp(&self) -> Option<f64> {
        self.timestamp
    }
}

/// The latest exemplar of a series (or of one histogram bucket). Only recording with an
/// exemplar takes its lock; plain recording never touches it.
#[derive(Debug, Default)]
pub(crate) struct ExemplarSlot {
    /// Whether an exemplar was ever set, so that scrapes skip the lock of the many series
    /// that never get one.
    present: AtomicBool,
    latest: Mutex<Option<Arc<Exemplar>>>,
}

impl ExemplarSlot {
    pub(crate) fn set(&self, exemplar: Exemplar) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(exemplar));
        self.present.store(true, Ordering::Release);
    }

    pub(crate) fn get(&self) -> Option<Arc<Exemplar>> {
        if !self.present.load(Ordering::Acquire) {
            return None;
        }
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn clear(&self) {
        if self.present.swap(false, Ordering::AcqRel) {
            *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_128_character_limit_counts_names_and_values_in_characters() {
        let value = "é".repeat(120); // 120 characters, 240 bytes
        assert!(
            Exemplar::new(&[("trace_id", &value)], 1.0).is_ok(),
            "8 + 120 = 128"
        );
        let err = Exemplar::new(&[("trace_id", &format!("{value}x"))], 1.0).unwrap_err();
        assert!(err.to_string().contains("129 characters"), "{err}");
        assert!(Exemplar::new(&[("bad-name", "x")], 1.0).is_err());
    }
}
