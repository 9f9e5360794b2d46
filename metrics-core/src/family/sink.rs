//! The walk over a registry's families and series that every encoder and reader shares.

use crate::kind::MetricKind;
use crate::metric::ValueRef;

use super::{LabelText, OVERFLOW_LABEL_VALUE};

/// A family header as the walk reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FamilyRef<'a> {
    /// The family name: without the `_total` or `_info` suffix of counters and infos.
    pub(crate) name: &'a str,
    pub(crate) help: &'a str,
    pub(crate) unit: Option<&'a str>,
    pub(crate) kind: MetricKind,
}

/// One series' labels, borrowed from wherever they are stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabelsRef<'a> {
    pub(crate) pairs: Pairs<'a>,
    pub(crate) consts: &'a [(Box<str>, Box<str>)],
    /// All the labels as the text formats write them, when rendered in advance.
    pub(crate) rendered: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Pairs<'a> {
    /// A registered family's series: names from the family, values from the series.
    Split {
        names: &'a [Box<str>],
        values: &'a LabelText,
    },
    /// A family's overflow series: every label is [`OVERFLOW_LABEL_VALUE`].
    Overflow { names: &'a [Box<str>] },
    /// A custom collector's series.
    Owned(&'a [(String, String)]),
}

impl LabelsRef<'_> {
    /// Calls `f` with each `(name, value)`: the series' own labels, then the constant ones.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &str)) {
        match self.pairs {
            Pairs::Split { names, values } => {
                for (name, value) in names.iter().zip(values.values()) {
                    f(name, value);
                }
            }
            Pairs::Overflow { names } => {
                for name in names {
                    f(name, OVERFLOW_LABEL_VALUE);
                }
            }
            Pairs::Owned(pairs) => {
                for (name, value) in pairs {
                    f(name, value);
                }
            }
        }
        for (name, value) in self.consts {
            f(name, value);
        }
    }
}

/// Receives the walk: a family header, then each of its series.
pub(crate) trait Sink {
    fn family(&mut self, family: &FamilyRef<'_>);
    fn series(&mut self, labels: &LabelsRef<'_>, value: ValueRef<'_>);
}
