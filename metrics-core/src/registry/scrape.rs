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
                for member in &group.members {
                    member.visit(sink, &mut scratch);
                    let n = member.overflowed();
                    if n > 0 {
                        overflowed.push((desc.name.clone(), n));
                    }
                }
            }
        }
        let failures = self.visit_collectors(sink);
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
