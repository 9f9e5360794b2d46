//! The walk a scrape takes: registered families, collectors, then vitals' own counters.

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use crate::collector::MetricFamily;
use crate::family::{FamilyRef, LabelsRef, Pairs, Sink};
use crate::kind::MetricKind;
use crate::metric::{MetricValue, Scratch};

use super::register::sample_names;
use super::{CollectorEntry, Registry, View, COLLECTOR_ERRORS_METRIC, OVERFLOW_METRIC};

thread_local! {
    /// Whether this thread is inside a collector's `collect()`.
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
}

impl Registry {
    /// Walks every family and series: registered metrics, then collectors, then vitals' own
    /// counters of overflows and collector failures.
    pub(crate) fn visit(&self, sink: &mut dyn Sink) {
        self.visit_inner(sink, Scratch::default());
    }

    /// As [`visit`](Self::visit), with each series' latest exemplars.
    pub(crate) fn visit_with_exemplars(&self, sink: &mut dyn Sink) {
        self.visit_inner(
            sink,
            Scratch {
                want_exemplars: true,
                ..Scratch::default()
            },
        );
    }

    pub(super) fn visit_inner(&self, sink: &mut dyn Sink, mut scratch: Scratch) {
        let mut overflowed: Vec<(Box<str>, u64)> = Vec::new();
        // In multi-process mode, the directory's merged families, by name: the registered
        // families that keep their values there are read from them.
        let mut merged = self.read_multiprocess();
        let mut multiprocess_errors = 0u64;
        {
            let metrics = self.store.read();
            for group in &metrics.groups {
                let desc = group.members[0].desc();
                sink.family(&FamilyRef {
                    name: &desc.name,
                    help: &desc.help,
                    unit: desc.unit.as_deref(),
                    kind: desc.kind,
                });
                let mut from_dir = false;
                for member in &group.members {
                    if member.mapped() {
                        from_dir = true;
                    } else {
                        member.visit(sink, &mut scratch);
                    }
                    let n = member.overflowed();
                    if n > 0 {
                        overflowed.push((desc.name.clone(), n));
                    }
                }
                if let Some(family) = from_dir.then(|| merged.remove(&*desc.name)).flatten() {
                    if family.kind == desc.kind {
                        visit_samples(sink, &family, &[]);
                    } else {
                        multiprocess_errors += 1;
                    }
                }
            }
            // What other processes (prometheus_client's among them) registered and this one
            // did not.
            let mut rest: Vec<MetricFamily> = merged.into_values().collect();
            rest.sort_by(|a, b| a.name.cmp(&b.name));
            for family in rest {
                let names = sample_names(&family.name, family.kind);
                let clash = names.iter().any(|n| {
                    metrics.claimed.contains_key(n)
                        || n == OVERFLOW_METRIC
                        || n == COLLECTOR_ERRORS_METRIC
                });
                if clash || family.check(&family.name).is_err() {
                    multiprocess_errors += 1;
                } else {
                    visit_collected(sink, &family, &family.name, &[]);
                }
            }
        }
        let mut failures = self.visit_collectors(sink);
        if let Some(errors) = self.multiprocess_errors(multiprocess_errors) {
            failures.insert(0, ("multiprocess".into(), errors));
        }
        visit_counts(
            sink,
            OVERFLOW_METRIC,
            "Lookups of new label sets redirected to the overflow series because the family \
             reached its series cap.",
            "metric",
            &overflowed,
        );
        visit_counts(
            sink,
            COLLECTOR_ERRORS_METRIC,
            "Scrapes at which a custom collector failed or gave an invalid family.",
            "collector",
            &failures,
        );
    }

    /// The merged families of the multi-process directory, by name; none in memory mode.
    fn read_multiprocess(&self) -> std::collections::HashMap<String, MetricFamily> {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mp) = &self.store.multiprocess {
            return match crate::multiprocess::read_merged(mp.store.dir()) {
                Ok(merged) => {
                    mp.skipped
                        .fetch_add(merged.skipped.len() as u64, Ordering::Relaxed);
                    merged
                        .families
                        .into_iter()
                        .map(|f| (f.name.clone(), f))
                        .collect()
                }
                Err(_) => {
                    mp.skipped.fetch_add(1, Ordering::Relaxed);
                    std::collections::HashMap::new()
                }
            };
        }
        std::collections::HashMap::new()
    }

    /// The multi-process errors so far, with `now` more from this scrape: files and
    /// families left out, and series kept in memory because their file could not take them.
    #[allow(clippy::unused_self)]
    fn multiprocess_errors(&self, now: u64) -> Option<u64> {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(mp) = &self.store.multiprocess {
            let total = mp.skipped.fetch_add(now, Ordering::Relaxed) + now + mp.store.failures();
            return (total > 0).then_some(total);
        }
        let _ = now;
        None
    }

    /// Runs every collector, exposes the valid families and returns the failure counts.
    ///
    /// No lock is held while a collector runs, so that `collect()` may call into the
    /// registry: register a metric or a collector (which the next scrape runs), make the first
    /// call of an `#[instrumented]` function, or read a sample. A read made from inside
    /// `collect()` runs no collectors itself: it sees the registered families, and cannot
    /// recurse into the collector reading.
    fn visit_collectors(&self, sink: &mut dyn Sink) -> Vec<(Box<str>, u64)> {
        let mut failures = Vec::new();
        if COLLECTING.with(Cell::get) {
            return failures;
        }
        let collectors: Vec<Arc<CollectorEntry>> = self
            .store
            .collectors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut emitted: HashSet<String> = HashSet::new();
        for entry in &collectors {
            // A panicking collector must not take the scrape (or the server) down with it.
            COLLECTING.with(|c| c.set(true));
            let result = catch_unwind(AssertUnwindSafe(|| entry.collector.collect()));
            COLLECTING.with(|c| c.set(false));
            let mut failed = false;
            if let Ok(Ok(families)) = result {
                for family in &families {
                    let name = match &entry.view.prefix {
                        Some(prefix) => format!("{prefix}_{}", family.name),
                        None => family.name.clone(),
                    };
                    if self.collector_family_ok(family, &name, &entry.view, &mut emitted) {
                        visit_collected(sink, family, &name, &entry.view.const_labels);
                    } else {
                        failed = true;
                    }
                }
            } else {
                failed = true;
            }
            if failed {
                entry.errors.fetch_add(1, Ordering::Relaxed);
            }
            let skipped = catch_unwind(AssertUnwindSafe(|| entry.collector.skipped_total()));
            let errors = entry
                .errors
                .load(Ordering::Relaxed)
                .saturating_add(skipped.unwrap_or(0));
            if errors > 0 {
                failures.push((entry.name.clone(), errors));
            }
        }
        failures
    }

    fn collector_family_ok(
        &self,
        family: &MetricFamily,
        name: &str,
        view: &View,
        emitted: &mut HashSet<String>,
    ) -> bool {
        if family.check(name).is_err() {
            return false;
        }
        let clashes_with_consts = family.samples.iter().any(|(labels, _)| {
            labels
                .iter()
                .any(|(k, _)| view.const_labels.iter().any(|(c, _)| **c == **k))
        });
        if clashes_with_consts {
            return false;
        }
        let names = sample_names(name, family.kind);
        let metrics = self.store.read();
        if names.iter().any(|n| {
            metrics.claimed.contains_key(n)
                || emitted.contains(n)
                || n == OVERFLOW_METRIC
                || n == COLLECTOR_ERRORS_METRIC
        }) {
            return false;
        }
        emitted.extend(names);
        true
    }
}

fn visit_collected(
    sink: &mut dyn Sink,
    family: &MetricFamily,
    name: &str,
    consts: &[(Box<str>, Box<str>)],
) {
    sink.family(&FamilyRef {
        name,
        help: &family.help,
        unit: family.unit.as_deref(),
        kind: family.kind,
    });
    visit_samples(sink, family, consts);
}

fn visit_samples(sink: &mut dyn Sink, family: &MetricFamily, consts: &[(Box<str>, Box<str>)]) {
    for (labels, value) in &family.samples {
        let labels = LabelsRef {
            pairs: Pairs::Owned(labels),
            consts,
            rendered: None,
        };
        sink.series(&labels, value.as_ref());
    }
}

/// Exposes one of vitals' own counters, one series per name that has a count.
fn visit_counts(
    sink: &mut dyn Sink,
    name: &str,
    help: &str,
    label: &str,
    counts: &[(Box<str>, u64)],
) {
    if counts.is_empty() {
        return;
    }
    let family = MetricFamily {
        name: name.to_owned(),
        help: help.to_owned(),
        unit: None,
        kind: MetricKind::Counter,
        samples: counts
            .iter()
            .map(|(value, n)| {
                (
                    vec![(label.to_owned(), value.to_string())],
                    MetricValue::counter(*n),
                )
            })
            .collect(),
    };
    visit_collected(sink, &family, name, &[]);
}
