//! The rings: at every tick, each tracked series' change since the tick before goes into one
//! slot of the fine ring, and every `coarse / fine` ticks the fine slots of that span are
//! folded into one slot of the coarse ring.

use std::collections::HashMap;
use std::sync::Arc;

use crate::family::{FamilyRef, LabelsRef, Sink};
use crate::kind::MetricKind;
use crate::metric::ValueRef;

use super::WindowConfig;

/// One resolution: its step, and when each slot began and ended, in seconds since the
/// windows started.
#[derive(Debug)]
pub(super) struct Ring {
    pub(super) step: std::time::Duration,
    pub(super) slots: usize,
    pub(super) starts: Box<[f64]>,
    pub(super) ends: Box<[f64]>,
    /// Slots written so far; the next one is `written % slots`.
    pub(super) written: u64,
}

impl Ring {
    fn new(step: std::time::Duration, slots: usize) -> Self {
        Self {
            step,
            slots,
            starts: vec![f64::NAN; slots].into(),
            ends: vec![f64::NAN; slots].into(),
            written: 0,
        }
    }

    /// The ring index of the slot `back` slots before the newest, if it holds one.
    pub(super) fn slot(&self, back: usize) -> Option<usize> {
        let held = self.held();
        (back < held).then(|| {
            let newest = self.written - 1;
            // `back < held <= slots`, so the subtraction cannot wrap and the index fits.
            #[allow(clippy::cast_possible_truncation)]
            let index = ((newest - back as u64) % self.slots as u64) as usize;
            index
        })
    }

    /// How many slots hold data.
    pub(super) fn held(&self) -> usize {
        usize::try_from(self.written).map_or(self.slots, |w| w.min(self.slots))
    }

    fn next(&self) -> usize {
        #[allow(clippy::cast_possible_truncation)] // less than `slots`
        let index = (self.written % self.slots as u64) as usize;
        index
    }
}

/// One series' slots at one resolution.
#[derive(Debug)]
pub(super) struct Lanes {
    /// `width` counts per slot, not cumulative: a histogram's buckets (`+Inf` last), a
    /// summary's count; none for counters and gauges. Saturated at `u32::MAX` per slot.
    pub(super) counts: Box<[u32]>,
    /// One value per slot: a counter's increase, a histogram's or summary's sum of the
    /// observations, a gauge's value (NaN when the series was absent).
    pub(super) values: Box<[f64]>,
    /// The smallest and largest observation per slot, for histograms that keep them;
    /// `(inf, -inf)` when there were none.
    pub(super) extremes: Option<Box<[(f64, f64)]>>,
}

impl Lanes {
    fn new(slots: usize, width: usize, kind: MetricKind, extremes: bool) -> Self {
        let empty = if is_gauge(kind) { f64::NAN } else { 0.0 };
        Self {
            counts: vec![0; slots * width].into(),
            values: vec![empty; slots].into(),
            extremes: extremes.then(|| vec![NO_EXTREMES; slots].into()),
        }
    }

    fn bytes(&self) -> usize {
        self.counts.len() * 4
            + self.values.len() * 8
            + self.extremes.as_ref().map_or(0, |e| e.len() * 16)
    }
}

pub(super) const NO_EXTREMES: (f64, f64) = (f64::INFINITY, f64::NEG_INFINITY);

pub(super) fn is_gauge(kind: MetricKind) -> bool {
    matches!(kind, MetricKind::Gauge | MetricKind::Unknown)
}

/// A tracked series: what identifies it, its cumulative values at the last tick, its slots.
#[derive(Debug)]
pub(super) struct Tracked {
    pub(super) family: Arc<str>,
    pub(super) kind: MetricKind,
    pub(super) labels: Box<[(Box<str>, Box<str>)]>,
    /// A histogram's finite bounds; empty otherwise.
    pub(super) bounds: Arc<[f64]>,
    /// Counts per slot (see [`Lanes::counts`]).
    pub(super) width: usize,
    /// The cumulative counts at the last tick (a histogram's buckets, a summary's count).
    last_counts: Box<[u64]>,
    /// A counter's total, or a histogram's or summary's sum, at the last tick.
    last_value: f64,
    /// The last fine tick at which the walk reported the series.
    last_seen: u64,
    pub(super) fine: Lanes,
    pub(super) coarse: Lanes,
    key: Box<[u8]>,
}

impl Tracked {
    pub(super) fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    pub(super) fn lanes(&self, coarse: bool) -> &Lanes {
        if coarse {
            &self.coarse
        } else {
            &self.fine
        }
    }

    /// What the series takes in memory.
    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.fine.bytes()
            + self.coarse.bytes()
            + self.last_counts.len() * 8
            + self.key.len() * 2
            + self
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 32)
                .sum::<usize>()
    }
}

/// Everything the ticks wrote.
#[derive(Debug)]
pub(super) struct State {
    pub(super) fine: Ring,
    pub(super) coarse: Ring,
    /// Fine slots per coarse slot.
    ratio: u64,
    /// The time of the last tick (the first one only takes the baseline).
    pub(super) last_tick: Option<f64>,
    pub(super) series: Vec<Option<Tracked>>,
    free: Vec<usize>,
    index: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    /// Series the last tick saw but could not track, the cap being reached.
    pub(super) untracked: usize,
    /// Family names, shared by their series.
    names: HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>,
}

impl State {
    pub(super) fn new(config: &WindowConfig) -> Self {
        let ratio = config.coarse_step.as_nanos() / config.fine_step.as_nanos();
        Self {
            fine: Ring::new(config.fine_step, config.fine_slots),
            coarse: Ring::new(config.coarse_step, config.coarse_slots),
            ratio: u64::try_from(ratio).unwrap_or(u64::MAX),
            last_tick: None,
            series: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
            untracked: 0,
            names: HashMap::default(),
        }
    }

    pub(super) fn tracked(&self) -> impl Iterator<Item = &Tracked> {
        self.series.iter().flatten()
    }

    pub(super) fn tracked_count(&self) -> usize {
        self.series.len() - self.free.len()
    }

    /// Takes one tick at `now` (seconds since the windows started) from the walk that `walk`
    /// runs, tracking what `config` allows. A tick not after the last one is ignored.
    pub(super) fn tick(
        &mut self,
        config: &WindowConfig,
        now: f64,
        walk: impl FnOnce(&mut dyn Sink),
    ) {
        if self.last_tick.is_some_and(|last| now <= last) || !now.is_finite() {
            return;
        }
        let baseline = self.last_tick.is_none();
        let slot = self.fine.next();
        let seen = self.fine.written;
        self.untracked = 0;
        {
            let mut sink = TickSink {
                state: self,
                config,
                family: None,
                key: Vec::new(),
                slot,
                seen,
                baseline,
            };
            walk(&mut sink);
        }
        if !baseline {
            let start = self.last_tick.unwrap_or(now);
            self.fine.starts[slot] = start;
            self.fine.ends[slot] = now;
            self.finish_fine_slot(slot, seen);
            self.fine.written += 1;
            if self.fine.written % self.ratio == 0 {
                self.fold_coarse();
            }
        }
        self.last_tick = Some(now);
    }

    /// Empties the slot of every series the walk did not report, and forgets those absent
    /// for longer than both rings hold.
    fn finish_fine_slot(&mut self, slot: usize, seen: u64) {
        let horizon = self.fine.slots as u64 + self.coarse.slots as u64 * self.ratio;
        for i in 0..self.series.len() {
            let Some(series) = &mut self.series[i] else {
                continue;
            };
            if series.last_seen == seen {
                continue;
            }
            clear_slot(&mut series.fine, slot, series.width, series.kind);
            if seen.saturating_sub(series.last_seen) > horizon {
                let key = std::mem::take(&mut series.key);
                self.index.remove(&key);
                self.series[i] = None;
                self.free.push(i);
            }
        }
    }

    /// Folds the last `ratio` fine slots into the next coarse slot.
    fn fold_coarse(&mut self) {
        let ratio = usize::try_from(self.ratio).unwrap_or(usize::MAX);
        let span: Vec<usize> = (0..ratio).filter_map(|back| self.fine.slot(back)).collect();
        let (Some(&newest), Some(&oldest)) = (span.first(), span.last()) else {
            return;
        };
        let target = self.coarse.next();
        self.coarse.starts[target] = self.fine.starts[oldest];
        self.coarse.ends[target] = self.fine.ends[newest];
        for series in self.series.iter_mut().flatten() {
            let width = series.width;
            let gauge = is_gauge(series.kind);
            let (fine, coarse) = (&series.fine, &mut series.coarse);
            for i in 0..width {
                let total = span
                    .iter()
                    .fold(0u32, |t, &s| t.saturating_add(fine.counts[s * width + i]));
                coarse.counts[target * width + i] = total;
            }
            coarse.values[target] = if gauge {
                // The mean of the values the fine slots hold (NaN when none does).
                let (sum, n) = span
                    .iter()
                    .map(|&s| fine.values[s])
                    .filter(|v| !v.is_nan())
                    .fold((0.0, 0u32), |(sum, n), v| (sum + v, n + 1));
                if n == 0 {
                    f64::NAN
                } else {
                    sum / f64::from(n)
                }
            } else {
                span.iter().map(|&s| fine.values[s]).sum()
            };
            if let (Some(fine), Some(coarse)) = (&fine.extremes, &mut coarse.extremes) {
                coarse[target] = span.iter().fold(NO_EXTREMES, |(lo, hi), &s| {
                    (lo.min(fine[s].0), hi.max(fine[s].1))
                });
            }
        }
        self.coarse.written += 1;
    }

    fn family_name(&mut self, name: &str) -> Arc<str> {
        if let Some(name) = self.names.get(name) {
            return Arc::clone(name);
        }
        let shared: Arc<str> = name.into();
        self.names.insert(name.into(), Arc::clone(&shared));
        shared
    }
}

fn clear_slot(lanes: &mut Lanes, slot: usize, width: usize, kind: MetricKind) {
    lanes.counts[slot * width..(slot + 1) * width].fill(0);
    lanes.values[slot] = if is_gauge(kind) { f64::NAN } else { 0.0 };
    if let Some(extremes) = &mut lanes.extremes {
        extremes[slot] = NO_EXTREMES;
    }
}

/// A series as one tick reads it.
enum Reading<'a> {
    Total(f64),
    Gauge(f64),
    Histogram {
        bounds: &'a [f64],
        cumulative: &'a [u64],
        sum: f64,
        extremes: Option<(f64, f64)>,
        keeps_extremes: bool,
    },
    Summary {
        count: u64,
        sum: f64,
    },
}

struct TickSink<'s> {
    state: &'s mut State,
    config: &'s WindowConfig,
    family: Option<(Arc<str>, MetricKind)>,
    key: Vec<u8>,
    slot: usize,
    seen: u64,
    baseline: bool,
}

impl Sink for TickSink<'_> {
    fn family(&mut self, family: &FamilyRef<'_>) {
        let tracked = family.kind != MetricKind::Info
            && self
                .config
                .only
                .as_ref()
                .is_none_or(|prefixes| prefixes.iter().any(|p| family.name.starts_with(&**p)));
        self.family = tracked.then(|| (self.state.family_name(family.name), family.kind));
    }

    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>) {
        let Some((family, kind)) = &self.family else {
            return;
        };
        let reading = match value {
            ValueRef::Counter(c) => Reading::Total(c.value.as_f64()),
            ValueRef::Gauge(n) => Reading::Gauge(n.as_f64()),
            ValueRef::Histogram(h) => Reading::Histogram {
                bounds: h.bounds,
                cumulative: h.cumulative,
                sum: h.sum,
                extremes: h.extremes.and_then(crate::metric::Extremes::take),
                keeps_extremes: h.extremes.is_some(),
            },
            ValueRef::Summary(s) => Reading::Summary {
                count: s.count,
                sum: s.sum,
            },
            ValueRef::Info => return,
        };
        self.key.clear();
        self.key.extend_from_slice(family.as_bytes());
        labels.for_each(|k, v| {
            for part in [k, v] {
                self.key.extend_from_slice(
                    &u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes(),
                );
                self.key.extend_from_slice(part.as_bytes());
            }
        });
        let (family, kind) = (Arc::clone(family), *kind);
        let state = &mut *self.state;
        let (bounds, width, extremes) = match &reading {
            Reading::Histogram {
                bounds,
                cumulative,
                keeps_extremes,
                ..
            } => (*bounds, cumulative.len(), *keeps_extremes),
            Reading::Summary { .. } => (&[][..], 1, false),
            _ => (&[][..], 0, false),
        };
        let index = match state.index.get(&*self.key) {
            // The same labels with other buckets (removed and registered again): a new series.
            Some(&i)
                if state.series[i].as_ref().is_some_and(|s| {
                    *s.bounds == *bounds
                        && s.width == width
                        && s.fine.extremes.is_some() == extremes
                }) =>
            {
                Some(i)
            }
            found => {
                if let Some(&i) = found {
                    state.series[i] = None;
                    state.free.push(i);
                    state.index.remove(&*self.key);
                }
                if state.tracked_count() >= self.config.max_series {
                    state.untracked += 1;
                    None
                } else {
                    let mut pairs = Vec::new();
                    labels.for_each(|k, v| pairs.push((k.into(), v.into())));
                    let tracked = Tracked {
                        family,
                        kind,
                        labels: pairs.into(),
                        bounds: bounds.into(),
                        width,
                        last_counts: vec![0; width].into(),
                        last_value: 0.0,
                        last_seen: self.seen,
                        fine: Lanes::new(state.fine.slots, width, kind, extremes),
                        coarse: Lanes::new(state.coarse.slots, width, kind, extremes),
                        key: self.key.clone().into(),
                    };
                    let i = match state.free.pop() {
                        Some(i) => {
                            state.series[i] = Some(tracked);
                            i
                        }
                        None => {
                            state.series.push(Some(tracked));
                            state.series.len() - 1
                        }
                    };
                    state.index.insert(self.key.clone().into(), i);
                    Some(i)
                }
            }
        };
        let Some(series) = index.and_then(|i| state.series[i].as_mut()) else {
            return;
        };
        series.last_seen = self.seen;
        record(series, &reading, self.slot, self.baseline);
    }
}

/// Writes a series' change since the last tick into `slot`, and keeps its cumulative values.
/// A value below the last one means the series restarted (a process restarted, a series
/// removed and recorded again): its whole value is the change, as Prometheus's `rate` counts
/// it. At the baseline tick nothing is written.
fn record(series: &mut Tracked, reading: &Reading<'_>, slot: usize, baseline: bool) {
    let width = series.width;
    let lanes = &mut series.fine;
    match *reading {
        Reading::Total(total) => {
            let change = if total >= series.last_value {
                total - series.last_value
            } else {
                total
            };
            series.last_value = total;
            if !baseline {
                lanes.values[slot] = change;
            }
        }
        Reading::Gauge(value) => {
            if !baseline {
                lanes.values[slot] = value;
            }
        }
        Reading::Histogram {
            cumulative,
            sum,
            extremes,
            ..
        } => {
            let last = &series.last_counts;
            let reset = cumulative
                .iter()
                .zip(last.iter())
                .any(|(now, then)| now < then);
            if !baseline {
                let counts = &mut lanes.counts[slot * width..(slot + 1) * width];
                let mut previous = (0u64, 0u64);
                for (i, count) in counts.iter_mut().enumerate() {
                    let now = cumulative[i] - previous.0;
                    let then = last[i].saturating_sub(previous.1);
                    previous = (cumulative[i], last[i]);
                    let change = if reset { now } else { now.saturating_sub(then) };
                    *count = u32::try_from(change).unwrap_or(u32::MAX);
                }
                lanes.values[slot] = if reset || sum < series.last_value {
                    sum
                } else {
                    sum - series.last_value
                };
                if let Some(slots) = &mut lanes.extremes {
                    slots[slot] = extremes.unwrap_or(NO_EXTREMES);
                }
            }
            series.last_counts.copy_from_slice(cumulative);
            series.last_value = sum;
        }
        Reading::Summary { count, sum } => {
            let then = series.last_counts[0];
            let reset = count < then;
            if !baseline {
                let change = if reset { count } else { count - then };
                lanes.counts[slot] = u32::try_from(change).unwrap_or(u32::MAX);
                lanes.values[slot] = if reset { sum } else { sum - series.last_value };
            }
            series.last_counts[0] = count;
            series.last_value = sum;
        }
    }
}
