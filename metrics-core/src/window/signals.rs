//! The four golden signals per route and per `#[instrumented]` function, over a window and
//! slot by slot for the live page.

use std::collections::BTreeMap;

use crate::kind::MetricKind;

use super::stats::{quantile, Span};
use super::store::{State, Tracked};

/// The four golden signals of one route or function over a window.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Signals {
    /// Requests (or calls) finished per second.
    pub rate: f64,
    /// The share of them that failed: a 5xx status for requests, `result="error"` for
    /// calls. `None` when none finished.
    pub error_ratio: Option<f64>,
    /// The median latency in seconds, from the histogram's buckets (see
    /// [`Stats::quantile`](super::Stats::quantile) for the error bound).
    pub p50: Option<f64>,
    /// The 90th percentile latency in seconds.
    pub p90: Option<f64>,
    /// The 99th percentile latency in seconds.
    pub p99: Option<f64>,
    /// Requests (or calls) in progress at the newest tick.
    pub in_flight: f64,
}

/// The golden signals of one route, for one method.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RouteSignals {
    /// The method label (`GET`, ..., or `_OTHER`).
    pub method: String,
    /// The route template.
    pub route: String,
    /// The signals.
    pub signals: Signals,
}

/// The golden signals of one `#[instrumented]` function.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FunctionSignals {
    /// The function label.
    pub function: String,
    /// The module label.
    pub module: String,
    /// The signals (`in_flight` is the number of calls in progress).
    pub signals: Signals,
}

/// Which families carry one kind of golden signals, under each naming preset.
struct Source {
    duration: &'static str,
    in_flight: &'static str,
    first: &'static str,
    second: &'static str,
    failed: fn(&Tracked) -> bool,
}

fn server_error(series: &Tracked) -> bool {
    let status = series
        .label("status")
        .or_else(|| series.label("http_response_status_code"));
    status.is_some_and(|s| s.starts_with('5'))
}

const ROUTES: [Source; 2] = [
    Source {
        duration: "http_request_duration_seconds",
        in_flight: "http_requests_in_flight",
        first: "method",
        second: "route",
        failed: server_error,
    },
    Source {
        duration: "http_server_request_duration_seconds",
        in_flight: "http_server_active_requests",
        first: "http_request_method",
        second: "http_route",
        failed: server_error,
    },
];

const FUNCTIONS: [Source; 1] = [Source {
    duration: crate::instrumented::DURATION,
    in_flight: crate::instrumented::CONCURRENT,
    first: "function",
    second: "module",
    failed: |series| series.label("result") == Some("error"),
}];

/// `family` is `name`, or `name` under a registry prefix (`myapp_name`).
fn is_family(family: &str, name: &str) -> bool {
    family
        .strip_suffix(name)
        .is_some_and(|head| head.is_empty() || head.ends_with('_'))
}

/// The series of one route or function.
pub(super) struct Group<'s> {
    pub(super) first: String,
    pub(super) second: String,
    /// The latency histogram's series, with whether each counts failures.
    duration: Vec<(&'s Tracked, bool)>,
    in_flight: Vec<&'s Tracked>,
}

pub(super) fn groups<'s>(state: &'s State, functions: bool) -> Vec<Group<'s>> {
    let sources: &[Source] = if functions { &FUNCTIONS } else { &ROUTES };
    let mut groups: BTreeMap<(String, String), Group<'s>> = BTreeMap::new();
    for series in state.tracked() {
        for source in sources {
            let duration =
                series.kind == MetricKind::Histogram && is_family(&series.family, source.duration);
            let in_flight = !duration && is_family(&series.family, source.in_flight);
            if !duration && !in_flight {
                continue;
            }
            let (Some(first), Some(second)) =
                (series.label(source.first), series.label(source.second))
            else {
                continue;
            };
            let group = groups
                .entry((first.to_owned(), second.to_owned()))
                .or_insert_with(|| Group {
                    first: first.to_owned(),
                    second: second.to_owned(),
                    duration: Vec::new(),
                    in_flight: Vec::new(),
                });
            if duration {
                group.duration.push((series, (source.failed)(series)));
            } else {
                group.in_flight.push(series);
            }
        }
    }
    groups.into_values().collect()
}

/// One slot's (or a whole span's) totals of a group.
#[derive(Default)]
struct Totals {
    count: u64,
    failed: u64,
    bounds: Vec<f64>,
    buckets: Vec<u64>,
}

impl Totals {
    fn add(&mut self, series: &Tracked, failed: bool, coarse: bool, slot: usize) {
        let width = series.width;
        let counts = &series.lanes(coarse).counts[slot * width..(slot + 1) * width];
        let n: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        self.count += n;
        if failed {
            self.failed += n;
        }
        if self.buckets.is_empty() {
            self.bounds = series.bounds.to_vec();
            self.buckets = vec![0; width];
        }
        if *series.bounds == *self.bounds {
            for (total, &c) in self.buckets.iter_mut().zip(counts) {
                *total += u64::from(c);
            }
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn error_ratio(&self) -> Option<f64> {
        (self.count > 0).then(|| self.failed as f64 / self.count as f64)
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.bounds, &self.buckets, q, None)
    }
}

fn in_flight_at(group: &Group<'_>, coarse: bool, slot: usize) -> Option<f64> {
    let values = group
        .in_flight
        .iter()
        .map(|s| s.lanes(coarse).values[slot])
        .filter(|v| !v.is_nan());
    values.fold(None, |total, v| Some(total.unwrap_or(0.0) + v))
}

impl Group<'_> {
    /// The group's requests over `span`.
    fn totals(&self, span: &Span) -> Totals {
        let mut totals = Totals::default();
        for &(series, failed) in &self.duration {
            for &slot in &span.slots {
                totals.add(series, failed, span.coarse, slot);
            }
        }
        totals
    }

    /// The group's signals over `span`.
    pub(super) fn signals(&self, span: &Span) -> Signals {
        let totals = self.totals(span);
        #[allow(clippy::cast_precision_loss)]
        let rate = if span.seconds > 0.0 {
            totals.count as f64 / span.seconds
        } else {
            0.0
        };
        Signals {
            rate,
            error_ratio: totals.error_ratio(),
            p50: totals.quantile(0.5),
            p90: totals.quantile(0.9),
            p99: totals.quantile(0.99),
            in_flight: span
                .slots
                .first()
                .and_then(|&slot| in_flight_at(self, span.coarse, slot))
                .unwrap_or(0.0),
        }
    }

    /// The group's signals slot by slot, oldest first.
    pub(super) fn points(&self, state: &State, span: &Span) -> Points {
        let ring = if span.coarse {
            &state.coarse
        } else {
            &state.fine
        };
        let mut points = Points::default();
        for &slot in span.slots.iter().rev() {
            let mut totals = Totals::default();
            for &(series, failed) in &self.duration {
                totals.add(series, failed, span.coarse, slot);
            }
            let seconds = ring.ends[slot] - ring.starts[slot];
            #[allow(clippy::cast_precision_loss)]
            points
                .rate
                .push((seconds > 0.0).then(|| totals.count as f64 / seconds));
            points.error_ratio.push(totals.error_ratio());
            points.p50.push(totals.quantile(0.5));
            points.p99.push(totals.quantile(0.99));
            points.in_flight.push(in_flight_at(self, span.coarse, slot));
        }
        points
    }

    /// Requests finished over the span, to rank groups by.
    pub(super) fn count(&self, span: &Span) -> u64 {
        self.totals(span).count
    }
}

/// One group's signals per slot, oldest first; `None` where a slot has no value (no
/// request finished, so no error ratio or latency).
#[derive(Debug, Default)]
pub(super) struct Points {
    pub(super) rate: Vec<Option<f64>>,
    pub(super) error_ratio: Vec<Option<f64>>,
    pub(super) p50: Vec<Option<f64>>,
    pub(super) p99: Vec<Option<f64>>,
    pub(super) in_flight: Vec<Option<f64>>,
}
