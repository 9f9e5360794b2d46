//! The in-flight gauge, which also remembers where its requests' series are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::family::SeriesIndex;
use crate::util::padded::CachePadded;
use crate::util::shard::{Shard, Slots};

/// The in-flight gauge of one method and route. Besides its value it remembers, for the last
/// few statuses its requests ended with, where their counter and histogram series are, so
/// that the end of a request finds them without hashing labels again: one lookup per request
/// instead of three. Exposed as a plain gauge.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(super) core: Arc<CachePadded<InFlightCore>>,
}

#[derive(Debug)]
pub(super) struct InFlightCore {
    /// The count, split into shards (see [`crate::util::shard`]) as an `i64` in two's
    /// complement: a request may be counted in on one thread and out on another.
    pub(super) value: Slots,
    /// Each: status (16 bits; 0 is empty), counter index (24), histogram index (24).
    pub(super) ends: [AtomicU64; ENDS],
    /// When a request of this method and route last kept its trace, for exemplars.
    pub(super) traced: super::trace::TraceSampler,
    /// In multi-process mode, the count's cell in this process's file (`livesum` unless the
    /// family says otherwise), which replaces `value`.
    #[cfg(all(feature = "multiprocess", unix))]
    pub(super) mapped: Option<crate::multiprocess::Cell>,
}

/// How many statuses per method and route are remembered; others are looked up.
pub(super) const ENDS: usize = 4;
/// An index that does not fit in 24 bits, or no counter (OpenTelemetry naming).
pub(super) const NO_SERIES: u64 = (1 << 24) - 1;

impl InFlight {
    #[inline]
    pub(super) fn add(&self, shard: Shard, delta: i64) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cell) = self.core.mapped {
            #[allow(clippy::cast_precision_loss)] // ±1
            return cell.add(delta as f64);
        }
        #[allow(clippy::cast_sign_loss)] // two's complement: adding it wraps to a subtraction
        self.core.value.add(shard, 0, delta as u64);
    }

    /// Where requests ending with `status` went: the counter's index (none with
    /// OpenTelemetry naming) and the histogram's.
    #[inline]
    pub(super) fn ends(&self, status: u16) -> Option<(Option<SeriesIndex>, SeriesIndex)> {
        let status = u64::from(status);
        self.core.ends.iter().find_map(|slot| {
            let packed = slot.load(Ordering::Acquire);
            if packed >> 48 != status {
                return None;
            }
            let requests = (packed >> 24) & NO_SERIES;
            #[allow(clippy::cast_possible_truncation)] // 24 bits
            let requests = (requests != NO_SERIES).then(|| SeriesIndex::from_raw(requests as u32));
            #[allow(clippy::cast_possible_truncation)]
            Some((requests, SeriesIndex::from_raw((packed & NO_SERIES) as u32)))
        })
    }

    /// Remembers where requests ending with `status` went. Series in the overflow, or at
    /// indexes beyond 24 bits, are not remembered: they are looked up each time (which is how
    /// the overflow is counted).
    pub(super) fn remember(
        &self,
        status: u16,
        requests: Option<SeriesIndex>,
        duration: SeriesIndex,
    ) {
        if status == 0 {
            return;
        }
        let fits = |index: SeriesIndex| index.get().filter(|&i| u64::from(i) < NO_SERIES);
        let Some(duration) = fits(duration) else {
            return;
        };
        let requests = match requests {
            Some(index) => match fits(index) {
                Some(i) => u64::from(i),
                None => return,
            },
            None => NO_SERIES,
        };
        let packed = u64::from(status) << 48 | requests << 24 | u64::from(duration);
        let slots = &self.core.ends;
        let slot = slots
            .iter()
            .find(|slot| {
                let current = slot.load(Ordering::Relaxed) >> 48;
                current == 0 || current == u64::from(status)
            })
            .unwrap_or(&slots[usize::from(status) % ENDS]);
        slot.store(packed, Ordering::Release);
    }
}

impl crate::Metric for InFlight {}

impl crate::metric::sealed::Sealed for InFlight {
    type Config = ();
    const KIND: crate::MetricKind = crate::MetricKind::Gauge;

    fn create((): &()) -> Self {
        Self {
            core: Arc::new(CachePadded(InFlightCore {
                value: Slots::new(1),
                ends: Default::default(),
                traced: super::trace::TraceSampler::new(),
                #[cfg(all(feature = "multiprocess", unix))]
                mapped: None,
            })),
        }
    }

    #[cfg(all(feature = "multiprocess", unix))]
    fn create_mapped((): &(), series: &crate::multiprocess::Series<'_>) -> Self {
        use crate::multiprocess::{FileKind, GaugeMode};
        let mode = series.gauge_mode(GaugeMode::LiveSum);
        Self {
            core: Arc::new(CachePadded(InFlightCore {
                value: Slots::new(1),
                ends: Default::default(),
                traced: super::trace::TraceSampler::new(),
                mapped: series.cell(FileKind::Gauge(mode), "", None),
            })),
        }
    }

    fn reset(&self, (): &()) {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(cell) = self.core.mapped {
            cell.set(0.0);
        }
        self.core.value.fill(0);
        for slot in &self.core.ends {
            slot.store(0, Ordering::Relaxed);
        }
    }

    fn read<'a>(
        &'a self,
        (): &'a (),
        _: &'a mut crate::metric::sealed::Scratch,
    ) -> crate::ValueRef<'a> {
        // The shards are read one after another: a request counted in on one shard and out on
        // another between two of those reads could make the sum -1 for that one scrape. No
        // request is ever in flight fewer than zero times.
        #[allow(clippy::cast_possible_wrap)] // two's complement, see `value`
        let value = (self.core.value.total(0) as i64).max(0);
        #[cfg(all(feature = "multiprocess", unix))]
        #[allow(clippy::cast_possible_truncation)] // a whole count
        let value = self.core.mapped.map_or(value, |c| (c.get() as i64).max(0));
        crate::ValueRef::Gauge(crate::Number::I64(value))
    }
}
