//! A family as the registry stores it, with its metric type erased.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::kind::MetricKind;
use crate::metric::{Metric, Scratch};

use super::{FamilyCore, LabelsRef, Pairs, Sink};

/// What a registered family is: its name, help, type and labels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Descriptor {
    /// The family name, without the `_total` or `_info` suffix of counters and infos.
    pub(crate) name: Box<str>,
    pub(crate) help: Box<str>,
    pub(crate) unit: Option<Box<str>>,
    pub(crate) kind: MetricKind,
    pub(crate) label_names: Box<[Box<str>]>,
    pub(crate) const_labels: Box<[(Box<str>, Box<str>)]>,
}

/// A family with its metric type erased, as the registry stores it.
pub(crate) trait ErasedFamily: Send + Sync + 'static {
    fn desc(&self) -> &Descriptor;
    fn config(&self) -> &dyn std::any::Any;
    fn overflowed(&self) -> u64;
    /// Whether its series keep their values in multi-process files (and so are read from the
    /// directory at a scrape).
    fn mapped(&self) -> bool;
    fn visit(&self, sink: &mut dyn Sink, scratch: &mut Scratch);
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

impl<M: Metric> ErasedFamily for FamilyCore<M> {
    fn desc(&self) -> &Descriptor {
        &self.desc
    }

    fn config(&self) -> &dyn std::any::Any {
        &self.config
    }

    fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn mapped(&self) -> bool {
        #[cfg(all(feature = "multiprocess", unix))]
        return self.files.is_some();
        #[cfg(not(all(feature = "multiprocess", unix)))]
        false
    }

    fn visit(&self, sink: &mut dyn Sink, scratch: &mut Scratch) {
        let names = &self.desc.label_names;
        let consts = &self.desc.const_labels;
        for node in self.nodes.iter() {
            if !node.live.load(Ordering::Acquire) {
                continue;
            }
            let labels = LabelsRef {
                pairs: Pairs::Split {
                    names,
                    values: &node.labels,
                },
                consts,
                rendered: Some(node.labels.rendered()),
            };
            sink.series(&labels, node.metric.read(&self.config, scratch));
        }
        if self.overflow_live.load(Ordering::Acquire) {
            if let Some(overflow) = self.overflow.get() {
                let labels = LabelsRef {
                    pairs: Pairs::Overflow { names },
                    consts,
                    rendered: Some(&self.overflow_rendered),
                };
                sink.series(&labels, overflow.read(&self.config, scratch));
            }
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
