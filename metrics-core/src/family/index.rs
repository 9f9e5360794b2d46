//! The lock-free index of a family's series (see the family module's documentation).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use crate::metric::Metric;
use crate::util::arena::Arena;
// Loom's in loom models (`--cfg vitals_loom`), so that the model below checks this code.
use crate::util::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Mutex, OnceLock};

use super::key::OVERFLOW_INDEX;
use super::{Descriptor, Key, LabelText, Ordered, SeriesIndex, OVERFLOW_LABEL_VALUE};

/// The most buckets a family's index has; chains grow longer past it.
const MAX_BUCKETS: usize = 1 << 16;
/// The most series (live or removed) a family can ever hold: indexes are `u32`.
const MAX_NODES: usize = u32::MAX as usize - 1;

/// One series of a family: its label values, their rendering, and its metric.
pub(super) struct Node<M> {
    pub(super) hash: u64,
    /// Its own index in the arena, for [`SeriesIndex`].
    pub(super) index: u32,
    /// The label values, and their rendering for the text formats.
    pub(super) labels: LabelText,
    pub(super) metric: M,
    /// The next series in this bucket's chain, as arena index plus one (0 ends the chain).
    pub(super) next: u32,
    pub(super) live: AtomicBool,
}

fn index_link(index: usize) -> u32 {
    // Indexes stay below `MAX_NODES`, so the link always fits.
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

pub(crate) struct FamilyCore<M: Metric> {
    pub(crate) desc: Descriptor,
    pub(crate) config: M::Config,
    pub(super) cap: usize,
    pub(super) max_nodes: usize,
    pub(super) hasher: foldhash::fast::RandomState,
    pub(super) nodes: Arena<Node<M>>,
    /// Chain heads, as arena index plus one; allocated with the first series.
    pub(super) buckets: OnceLock<Box<[AtomicU32]>>,
    /// Serialises the writers (insertion, revival, removal); holds their scratch buffer.
    pub(super) writer: Mutex<String>,
    pub(super) live: AtomicUsize,
    /// Counts removals and clears, so that [`DenseFamily`] slots know when to look again.
    pub(super) removals: AtomicU64,
    pub(super) overflow: OnceLock<M>,
    pub(super) overflow_live: AtomicBool,
    pub(super) overflowed: AtomicU64,
    /// The overflow series' labels, rendered.
    pub(super) overflow_rendered: Box<str>,
    /// In multi-process mode, where new series keep their values.
    #[cfg(all(feature = "multiprocess", unix))]
    pub(crate) files: Option<crate::multiprocess::FamilyFiles>,
}

impl<M: Metric> FamilyCore<M> {
    pub(crate) fn new(desc: Descriptor, config: M::Config, cap: usize) -> Self {
        let overflow_rendered = LabelText::build(
            &desc.label_names,
            &desc.const_labels,
            &|f| {
                desc.label_names
                    .iter()
                    .for_each(|_| f(OVERFLOW_LABEL_VALUE))
            },
            &mut String::new(),
        )
        .map_or_else(String::new, |text| text.rendered().to_owned());
        Self {
            desc,
            config,
            cap,
            max_nodes: cap.saturating_mul(2).saturating_add(1024).min(MAX_NODES),
            hasher: foldhash::fast::RandomState::default(),
            nodes: Arena::default(),
            buckets: OnceLock::new(),
            writer: Mutex::new(String::new()),
            live: AtomicUsize::new(0),
            removals: AtomicU64::new(0),
            overflow: OnceLock::new(),
            overflow_live: AtomicBool::new(false),
            overflowed: AtomicU64::new(0),
            overflow_rendered: overflow_rendered.into(),
            #[cfg(all(feature = "multiprocess", unix))]
            files: None,
        }
    }

    /// A new series with these label values (in the order of the names).
    fn new_metric<'v>(&self, values: impl Iterator<Item = &'v str>) -> M {
        #[cfg(all(feature = "multiprocess", unix))]
        if let Some(files) = &self.files {
            let mut labels: Vec<(&str, &str)> = self
                .desc
                .label_names
                .iter()
                .map(|n| &**n)
                .zip(values)
                .collect();
            labels.extend(self.desc.const_labels.iter().map(|(k, v)| (&**k, &**v)));
            let series =
                crate::multiprocess::Series::new(files, &self.desc.name, &self.desc.help, labels);
            return M::create_mapped(&self.config, &series);
        }
        drop(values);
        M::create(&self.config)
    }

    fn new_overflow(&self) -> M {
        self.new_metric(std::iter::repeat(OVERFLOW_LABEL_VALUE))
    }

    #[inline]
    pub(super) fn hash<K: Key>(&self, key: &K) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        key.hash_into(&mut hasher);
        hasher.finish()
    }

    /// The series of the unlabeled family.
    pub(crate) fn only_series(&self) -> M {
        self.lookup(&Ordered(&[])).clone()
    }

    /// Follows the chain of `hash`'s bucket to the series of `key`, live or not.
    #[inline]
    pub(super) fn find<K: Key>(&self, hash: u64, key: &K) -> Option<&Node<M>> {
        let buckets = self.buckets.get()?;
        #[allow(clippy::cast_possible_truncation)] // only the low bits pick the bucket
        let mut link = buckets[hash as usize & (buckets.len() - 1)].load(Ordering::Acquire);
        while link != 0 {
            let index = link as usize - 1;
            let node = self.nodes.get(index)?;
            if node.hash == hash && key.matches(&node.labels) {
                return Some(node);
            }
            link = node.next;
        }
        None
    }

    #[inline]
    pub(super) fn lookup<K: Key>(&self, key: &K) -> &M {
        match self.lookup_node(key) {
            Some(node) => &node.metric,
            None => self.overflow(),
        }
    }

    /// The live series of `key`, made or brought back if need be; `None` when the label set
    /// goes to the overflow series.
    #[inline]
    pub(super) fn lookup_node<K: Key>(&self, key: &K) -> Option<&Node<M>> {
        let hash = self.hash(key);
        match self.find(hash, key) {
            Some(node) if node.live.load(Ordering::Acquire) => Some(node),
            // A new label set while the family is full: no need for the writer lock.
            None if self.live.load(Ordering::Acquire) >= self.cap => None,
            _ => self.resolve(hash, key),
        }
    }

    /// The slow path, under the writer lock: bring a removed series back, or add a new one,
    /// or say (with `None`) that the label set goes to the overflow series.
    #[cold]
    #[inline(never)]
    pub(super) fn resolve<K: Key>(&self, hash: u64, key: &K) -> Option<&Node<M>> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let scratch = &mut *writer;
        let live = self.live.load(Ordering::Relaxed);
        if let Some(node) = self.find(hash, key) {
            if node.live.load(Ordering::Relaxed) {
                return Some(node);
            }
            if live >= self.cap {
                return None;
            }
            node.metric.reset(&self.config);
            node.live.store(true, Ordering::Release);
            self.live.store(live + 1, Ordering::Release);
            return Some(node);
        }
        if live >= self.cap || self.nodes.len() >= self.max_nodes {
            return None;
        }
        let buckets = self.buckets.get_or_init(|| {
            let count = self.cap.clamp(16, MAX_BUCKETS).next_power_of_two();
            (0..count).map(|_| AtomicU32::new(0)).collect()
        });
        #[allow(clippy::cast_possible_truncation)]
        let bucket = &buckets[hash as usize & (buckets.len() - 1)];
        let labels = LabelText::build(
            &self.desc.label_names,
            &self.desc.const_labels,
            &|f| key.visit(f),
            scratch,
        )?;
        // One writer at a time: the next push takes the current length as its index.
        let index = u32::try_from(self.nodes.len()).ok()?;
        let metric = self.new_metric(labels.values());
        let node = Node {
            hash,
            index,
            labels,
            metric,
            next: bucket.load(Ordering::Relaxed),
            live: AtomicBool::new(true),
        };
        let index = self.nodes.push(node).ok()?;
        // Publish: the node is complete in the arena before its bucket points at it.
        bucket.store(index_link(index), Ordering::Release);
        self.live.store(live + 1, Ordering::Release);
        self.nodes.get(index)
    }

    /// As [`lookup`](Self::lookup), but gives the series' index, to come back to it
    /// without another lookup.
    #[inline]
    pub(super) fn lookup_index<K: Key>(&self, key: &K) -> SeriesIndex {
        match self.lookup_node(key) {
            Some(node) => SeriesIndex(node.index),
            None => {
                self.overflow();
                SeriesIndex(OVERFLOW_INDEX)
            }
        }
    }

    /// The series at `index` if it is still live (not removed since the lookup).
    #[inline]
    pub(super) fn live_series(&self, index: SeriesIndex) -> Option<&M> {
        let node = self.nodes.get(index.0 as usize)?;
        node.live.load(Ordering::Acquire).then_some(&node.metric)
    }

    /// The series at `index`, as a lookup gave it.
    #[inline]
    pub(super) fn series(&self, index: SeriesIndex) -> &M {
        match self.nodes.get(index.0 as usize) {
            Some(node) if index.0 != OVERFLOW_INDEX => &node.metric,
            // The overflow series (counted when the lookup was redirected).
            _ => self.overflow.get_or_init(|| self.new_overflow()),
        }
    }

    /// The label value at `position` of the series at `index`; `None` for the overflow
    /// series.
    pub(super) fn label_value(&self, index: SeriesIndex, position: usize) -> Option<&str> {
        if index.0 == OVERFLOW_INDEX {
            return None;
        }
        self.nodes
            .get(index.0 as usize)?
            .labels
            .values()
            .nth(position)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn overflow(&self) -> &M {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        let metric = self.overflow.get_or_init(|| self.new_overflow());
        if !self.overflow_live.load(Ordering::Acquire) {
            self.overflow_live.store(true, Ordering::Release);
        }
        metric
    }

    pub(super) fn remove<K: Key>(&self, key: &K) -> bool {
        let hash = self.hash(key);
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        match self.find(hash, key) {
            Some(node) if node.live.swap(false, Ordering::AcqRel) => {
                self.live.fetch_sub(1, Ordering::AcqRel);
                self.removals.fetch_add(1, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }

    pub(super) fn clear(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for node in self.nodes.iter() {
            node.live.store(false, Ordering::Release);
        }
        self.live.store(0, Ordering::Release);
        self.removals.fetch_add(1, Ordering::AcqRel);
        if self.overflow_live.swap(false, Ordering::AcqRel) {
            if let Some(overflow) = self.overflow.get() {
                overflow.reset(&self.config);
            }
        }
    }
}

/// A loom model of the index: two threads asking at once for the same new label set get the
/// same series, while a third reads; none of them sees a half-published node. Run with the
/// other models (`RUSTFLAGS="--cfg vitals_loom" cargo test -p vitals-core --lib --release
/// loom_`).
#[cfg(all(test, vitals_loom))]
mod loom_models {
    use loom::sync::Arc;

    use crate::Registry;

    #[test]
    fn loom_concurrent_first_lookups_of_a_label_set_share_one_series() {
        loom::model(|| {
            let registry = Registry::new();
            let family = Arc::new(
                registry
                    .counter("jobs", "Jobs.")
                    .label_names(["queue"])
                    .register()
                    .unwrap(),
            );
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let family = Arc::clone(&family);
                    loom::thread::spawn(move || {
                        // Loom explores nothing when a new thread's first step is an atomic
                        // load (tokio-rs/loom#392, open): yield first.
                        loom::thread::yield_now();
                        family.with_label_values(&["emails"]).unwrap().inc();
                    })
                })
                .collect();
            // A reader meanwhile: the series, if it sees it, is whole.
            if let Some(value) = registry.get_sample_value("jobs_total", &[("queue", "emails")]) {
                assert!(value <= 2.0, "{value}");
            }
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(
                registry.get_sample_value("jobs_total", &[("queue", "emails")]),
                Some(2.0),
                "both increments went to one series"
            );
            assert_eq!(family.len(), 1);
        });
    }
}
