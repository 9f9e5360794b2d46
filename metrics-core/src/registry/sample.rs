//! Reading one sample back without encoding: [`Registry::get_sample_value`].

use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::metric::{Number, ValueRef};

use super::Registry;

impl Registry {
    /// The value of one sample, as the text exposition would show it, without encoding or
    /// parsing text: for tests and health checks, like prometheus_client's
    /// `get_sample_value`.
    ///
    /// `name` is the sample name (`requests_total`, `latency_seconds_bucket`,
    /// `latency_seconds_count`, ...) and `labels` the sample's labels in any order, constant
    /// labels and `le` or `quantile` included (`le` and `quantile` compare as numbers, so
    /// `"1"` and `"1.0"` both match the bucket bound 1). Returns `None` when no sample matches.
    ///
    /// ```
    /// use vitals_core::Registry;
    ///
    /// let registry = Registry::new();
    /// let requests = registry.counter("requests", "Requests.").label_names(["status"]).register()?;
    /// requests.with_labels(&[("status", "200")])?.inc();
    /// assert_eq!(registry.get_sample_value("requests_total", &[("status", "200")]), Some(1.0));
    /// assert_eq!(registry.get_sample_value("requests_total", &[("status", "500")]), None);
    /// # Ok::<(), vitals_core::Error>(())
    /// ```
    #[must_use]
    pub fn get_sample_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut finder = SampleFinder {
            name,
            labels,
            family: None,
            found: None,
        };
        self.visit(&mut finder);
        finder.found
    }
}

/// A sample of the walk: its name suffix, its extra label and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Extra {
    None,
    Le(f64),
    Quantile(f64),
}

/// Expands one series into the samples of the Prometheus text format.
pub(crate) fn for_each_sample(value: ValueRef<'_>, mut f: impl FnMut(&'static str, Extra, Number)) {
    match value {
        ValueRef::Counter(c) => {
            f("_total", Extra::None, c.value);
            if let Some(created) = c.created {
                f("_created", Extra::None, Number::F64(created));
            }
        }
        ValueRef::Gauge(n) => f("", Extra::None, n),
        ValueRef::Info => f("_info", Extra::None, Number::U64(1)),
        ValueRef::Histogram(h) => {
            for (i, &count) in h.cumulative.iter().enumerate() {
                let bound = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                f("_bucket", Extra::Le(bound), Number::U64(count));
            }
            f("_sum", Extra::None, Number::F64(h.sum));
            f("_count", Extra::None, Number::U64(h.count()));
            if let Some(created) = h.created {
                f("_created", Extra::None, Number::F64(created));
            }
        }
        ValueRef::Summary(s) => {
            for &(q, v) in s.quantiles {
                f("", Extra::Quantile(q), Number::F64(v));
            }
            f("_sum", Extra::None, Number::F64(s.sum));
            f("_count", Extra::None, Number::U64(s.count));
            if let Some(created) = s.created {
                f("_created", Extra::None, Number::F64(created));
            }
        }
    }
}

struct SampleFinder<'a> {
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
    family: Option<String>,
    found: Option<f64>,
}

impl Sink for SampleFinder<'_> {
    fn family(&mut self, family: &FamilyRef<'_>) {
        self.family = self
            .name
            .starts_with(family.name)
            .then(|| family.name.to_owned());
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let Some(family) = &self.family else {
            return;
        };
        if self.found.is_some() {
            return;
        }
        let suffix_wanted = &self.name[family.len()..];
        let mut own = 0;
        let mut own_match = true;
        labels.for_each(|k, v| {
            own += 1;
            own_match &= self.labels.iter().any(|&(wk, wv)| wk == k && wv == v);
        });
        if !own_match {
            return;
        }
        for_each_sample(value, |suffix, extra, n| {
            if suffix != suffix_wanted || self.found.is_some() {
                return;
            }
            let (extra_name, extra_value) = match extra {
                Extra::None => (None, 0.0),
                Extra::Le(b) => (Some("le"), b),
                Extra::Quantile(q) => (Some("quantile"), q),
            };
            let wanted_extra = self.labels.len() == own + usize::from(extra_name.is_some());
            let extra_matches = extra_name.is_none_or(|en| {
                self.labels
                    .iter()
                    .any(|&(k, v)| k == en && parse_float(v) == Some(extra_value))
            });
            if wanted_extra && extra_matches {
                self.found = Some(n.as_f64());
            }
        });
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}
