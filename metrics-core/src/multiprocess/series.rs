//! What a family in multi-process mode hands its new series: where their entries go and the
//! keys they are written under.

use super::mapped::Cell;
use super::store::{FileKind, ProcessStore};
use super::GaugeMode;

/// A family's link to its process's files.
#[derive(Debug, Clone)]
pub(crate) struct FamilyFiles {
    pub(crate) store: &'static ProcessStore,
    /// The gauge mode the family was registered with, if any.
    pub(crate) mode: Option<GaugeMode>,
}

/// One new series: its family's name and help, and its labels (constant ones included),
/// sorted by name as prometheus_client sorts them.
#[derive(Debug)]
#[allow(unreachable_pub)] // named only in the sealed `Metric` trait
pub struct Series<'a> {
    files: &'a FamilyFiles,
    metric: &'a str,
    help: &'a str,
    labels: Vec<(&'a str, &'a str)>,
}

impl<'a> Series<'a> {
    pub(crate) fn new(
        files: &'a FamilyFiles,
        metric: &'a str,
        help: &'a str,
        mut labels: Vec<(&'a str, &'a str)>,
    ) -> Self {
        labels.sort_unstable();
        Self {
            files,
            metric,
            help,
            labels,
        }
    }

    /// The gauge mode of the family, or `default` when it was registered without one.
    pub(crate) fn gauge_mode(&self, default: GaugeMode) -> GaugeMode {
        self.files.mode.unwrap_or(default)
    }

    /// The cell of the sample `<metric><suffix>` in the file of `kind`, with an `le` label for
    /// a histogram bucket; `None` when it cannot be written (the series then stays in memory).
    pub(crate) fn cell(&self, kind: FileKind, suffix: &str, le: Option<f64>) -> Option<Cell> {
        let le_text = le.map(format_le);
        let mut labels = self.labels.clone();
        if let Some(le) = &le_text {
            labels.push(("le", le));
            labels.sort_unstable();
        }
        let mut sample = String::with_capacity(self.metric.len() + suffix.len());
        sample.push_str(self.metric);
        sample.push_str(suffix);
        let key = key(self.metric, &sample, &labels, self.help);
        self.files.store.cell(kind, &key)
    }
}

/// A bucket bound as prometheus_client writes it (`0.005`, `1.0`, `+Inf`).
fn format_le(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_owned()
    } else if bound == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{bound:?}")
    }
}

/// The key prometheus_client writes: `json.dumps((metric, sample, labels, help),
/// sort_keys=True)`, non-ASCII escaped.
pub(crate) fn key(metric: &str, sample: &str, labels: &[(&str, &str)], help: &str) -> String {
    let mut out = String::with_capacity(64 + metric.len() * 2 + help.len());
    out.push('[');
    string(&mut out, metric);
    out.push_str(", ");
    string(&mut out, sample);
    out.push_str(", {");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        string(&mut out, name);
        out.push_str(": ");
        string(&mut out, value);
    }
    out.push_str("}, ");
    string(&mut out, help);
    out.push(']');
    out
}

fn string(out: &mut String, s: &str) {
    crate::util::fmt::json_string(out, s, true);
}

#[cfg(test)]
mod tests {
    use super::super::format::Key;
    use super::*;

    #[test]
    fn keys_are_written_as_python_writes_them_and_read_back() {
        let text = key(
            "requests",
            "requests_total",
            &[("method", "GET"), ("route", "/a\"b\\c\n")],
            "Requests é 😀.",
        );
        assert_eq!(
            text,
            r#"["requests", "requests_total", {"method": "GET", "route": "/a\"b\\c\n"}, "Requests \u00e9 \ud83d\ude00."]"#
        );
        let parsed = Key::parse(&text).unwrap();
        assert_eq!(parsed.labels[1].1, "/a\"b\\c\n");
        assert_eq!(parsed.help, "Requests é 😀.");
        assert_eq!(format_le(0.005), "0.005");
        assert_eq!(format_le(1.0), "1.0");
        assert_eq!(format_le(f64::INFINITY), "+Inf");
    }
}
