//! The sites of one registry view and the collector that exposes them at scrape time.

use std::sync::{Arc, PoisonError, RwLock};

use crate::collector::{CollectError, Collector, MetricFamily};
use crate::metric::MetricValue;

use super::{Outcome, Site, SiteMeta, STARTED};

/// The sites of one registry view, exposed by one collector.
pub(crate) struct FunctionSites {
    sites: RwLock<Vec<&'static dyn SiteRead>>,
    /// Whether its registry is in multi-process mode, where the sites' series are in files.
    multiprocess: bool,
}

impl std::fmt::Debug for FunctionSites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .sites
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("FunctionSites").field("sites", &n).finish()
    }
}

impl FunctionSites {
    pub(super) fn new(multiprocess: bool) -> Self {
        Self {
            sites: RwLock::new(Vec::new()),
            multiprocess,
        }
    }

    pub(super) fn add(&self, site: &'static dyn SiteRead) {
        self.sites
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(site);
    }
}

/// A site's figures, whatever its bucket count.
pub(super) trait SiteRead: Send + Sync {
    fn meta(&self) -> &SiteMeta;
    fn function(&self) -> &str;
    /// Calls started so far; read after the buckets, it is at least their total.
    fn started(&self) -> u64;
    /// Per-bucket counts (not cumulative) and the sum in nanoseconds.
    fn read(&self, outcome: Outcome, counts: &mut Vec<u64>) -> u64;
    /// The exemplars of `outcome`: one per bucket, then the calls counter's; empty when no
    /// call was traced.
    fn exemplars(&self, outcome: Outcome) -> Vec<Option<crate::metric::Exemplar>>;
}

impl<const B: usize> SiteRead for Site<B> {
    fn meta(&self) -> &SiteMeta {
        &self.meta
    }

    fn function(&self) -> &str {
        self.function.get().map_or(self.meta.function, |f| f)
    }

    fn started(&self) -> u64 {
        self.slots.get().map_or(0, |slots| slots.total(STARTED))
    }

    fn read(&self, outcome: Outcome, counts: &mut Vec<u64>) -> u64 {
        counts.clear();
        let Some(slots) = self.slots.get() else {
            counts.resize(B, 0);
            return 0;
        };
        counts.extend((0..B).map(|bucket| slots.total(Self::slot(outcome, bucket))));
        slots.total(Self::slot(outcome, B))
    }

    #[cfg(feature = "opentelemetry")]
    fn exemplars(&self, outcome: Outcome) -> Vec<Option<crate::metric::Exemplar>> {
        let Some(slots) = self.exemplars.get() else {
            return Vec::new();
        };
        let at = outcome as usize * (B + 1);
        slots[at..at + B + 1]
            .iter()
            .map(|slot| slot.get())
            .collect()
    }

    #[cfg(not(feature = "opentelemetry"))]
    fn exemplars(&self, _: Outcome) -> Vec<Option<crate::metric::Exemplar>> {
        Vec::new()
    }
}

/// The figures of one label set, merged over the sites that share it.
struct Series<'a> {
    labels: Vec<(&'a str, &'a str)>,
    bounds: &'a [f64],
    concurrent: u64,
    /// Per outcome: per-bucket counts and the sum in nanoseconds.
    results: [(Vec<u64>, u64); 3],
    /// Per outcome: the exemplars of the first site that has some (see
    /// [`SiteRead::exemplars`]).
    exemplars: [Vec<Option<crate::metric::Exemplar>>; 3],
}

impl Collector for Arc<FunctionSites> {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        if self.multiprocess {
            // The sites write their files; the registry's scrape reads them back merged.
            return Ok(Vec::new());
        }
        let sites = self.sites.read().unwrap_or_else(PoisonError::into_inner);
        let mut merged: Vec<Series<'_>> = Vec::with_capacity(sites.len());
        let mut counts = Vec::new();
        for site in sites.iter() {
            let meta = site.meta();
            let mut labels = vec![("function", site.function()), ("module", meta.module)];
            labels.extend(meta.labels.iter().copied());
            // Two sites with one label set (the same name given twice, say) are one series.
            // Their buckets must agree to be added; a site whose buckets differ is left out.
            let index = match merged.iter().position(|s| s.labels == labels) {
                Some(i) if merged[i].bounds == meta.bounds => i,
                Some(_) => continue,
                None => {
                    merged.push(Series {
                        labels,
                        bounds: meta.bounds,
                        concurrent: 0,
                        results: Default::default(),
                        exemplars: Default::default(),
                    });
                    merged.len() - 1
                }
            };
            let series = &mut merged[index];
            let mut finished = 0;
            for outcome in Outcome::ALL {
                let sum = site.read(outcome, &mut counts);
                finished += counts.iter().sum::<u64>();
                let (total, total_sum) = &mut series.results[outcome as usize];
                if total.is_empty() {
                    total.resize(counts.len(), 0);
                }
                for (t, c) in total.iter_mut().zip(&counts) {
                    *t += c;
                }
                *total_sum = total_sum.saturating_add(sum);
                let exemplars = &mut series.exemplars[outcome as usize];
                if exemplars.is_empty() {
                    *exemplars = site.exemplars(outcome);
                }
            }
            series.concurrent += site.started().saturating_sub(finished);
        }

        let mut calls = MetricFamily::counter(
            super::CALLS_TOTAL,
            "Calls of functions instrumented with #[instrumented], by result.",
        );
        let mut durations = MetricFamily::histogram(
            super::DURATION,
            "Duration of calls of functions instrumented with #[instrumented], by result.",
        )
        .with_unit("seconds");
        let mut concurrent = MetricFamily::gauge(
            super::CONCURRENT,
            "Calls of functions instrumented with #[instrumented] in progress.",
        );
        for series in &merged {
            concurrent.add_sample(&series.labels, MetricValue::gauge(series.concurrent));
            for outcome in Outcome::ALL {
                let (counts, sum_nanos) = &series.results[outcome as usize];
                let count: u64 = counts.iter().sum();
                // `ok` and `error` are there from the first call, so that error ratios are
                // 0 rather than absent; `dropped` appears when it happens.
                if outcome == Outcome::Dropped && count == 0 {
                    continue;
                }
                let mut labels = series.labels.clone();
                labels.push(("result", outcome.label()));
                let exemplars = &series.exemplars[outcome as usize];
                let counted = exemplars.last().cloned().flatten();
                calls.add_sample(
                    &labels,
                    MetricValue::counter(count).with_exemplars([counted]),
                );
                let mut cumulative = 0;
                let buckets = series.bounds.iter().zip(counts).map(|(&bound, &c)| {
                    cumulative += c;
                    (bound, cumulative)
                });
                let pairs: Vec<(f64, u64)> = buckets.collect();
                #[allow(clippy::cast_precision_loss)]
                let sum = *sum_nanos as f64 / 1e9;
                // The last exemplar is the counter's.
                let per_bucket = exemplars.len().saturating_sub(1);
                let value = MetricValue::histogram(pairs, count, sum)
                    .with_exemplars(exemplars.iter().take(per_bucket).cloned());
                durations.add_sample(&labels, value);
            }
        }
        Ok(vec![calls, durations, concurrent])
    }
}
