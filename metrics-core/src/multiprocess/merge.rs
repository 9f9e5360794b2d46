//! Reading a directory and merging its files with prometheus_client's rules.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::collector::MetricFamily;
use crate::kind::MetricKind;
use crate::metric::MetricValue;

use super::format::{self, Entry, Key};
use super::{GaugeMode, Merged};

type Labels = Vec<(String, String)>;

/// What a file's name says it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileName {
    pub(super) kind: MetricKind,
    pub(super) mode: Option<GaugeMode>,
    /// The process identifier (a pid, or what the writer used instead).
    pub(super) process: String,
}

impl FileName {
    /// Parses `<type>_<process>.db` or `gauge_<mode>_<process>.db`; `None` for any other name.
    pub(super) fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".db")?;
        let parts: Vec<&str> = stem.split('_').collect();
        let (kind, mode, process) = match parts.as_slice() {
            ["counter", p] => (MetricKind::Counter, None, *p),
            ["histogram", p] => (MetricKind::Histogram, None, *p),
            ["summary", p] => (MetricKind::Summary, None, *p),
            ["gauge", mode, p] => (MetricKind::Gauge, Some(GaugeMode::from_name(mode)?), *p),
            _ => return None,
        };
        (!process.is_empty()).then(|| Self {
            kind,
            mode,
            process: process.to_owned(),
        })
    }
}

/// One family being merged.
struct Acc {
    kind: MetricKind,
    mode: Option<GaugeMode>,
    help: String,
    /// Counters, summaries, gauges: by (sample name, labels); the value and, for
    /// `mostrecent`, its timestamp.
    values: BTreeMap<(String, Labels), (f64, f64)>,
    /// Histograms: by labels (without `le`), the bucket counts by bound, and the sum.
    buckets: BTreeMap<Labels, (Vec<(f64, f64)>, f64)>,
}

pub(super) fn read_dir(dir: &Path) -> io::Result<Merged> {
    // vitals processes that have died: their live gauges stop counting, as if marked dead,
    // and their other files are folded into the archives, under the directory lock; then the
    // directory is read under it, shared, so that no compaction runs meanwhile.
    #[cfg(unix)]
    let dead = super::store::dead_processes(dir);
    #[cfg(unix)]
    let _reading = {
        if !dead.is_empty() {
            if let Some(lock) = super::store::dir_lock(dir) {
                if super::mapped::try_lock(&lock, true).unwrap_or(false) {
                    let dead: Vec<String> = dead.iter().cloned().collect();
                    remove_live_files(dir, &dead);
                    // A compaction that fails leaves files in place: they are read as they are.
                    let _ = super::compact::compact(dir, &dead);
                }
            }
        }
        // Without it past a second: only a lock nobody will release is held that long.
        super::store::dir_lock(dir).filter(|lock| {
            super::mapped::lock_within(lock, false, std::time::Duration::from_secs(1))
                .unwrap_or(false)
        })
    };
    let listing = std::fs::read_dir(dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("listing multi-process directory {}: {e}", dir.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    files.sort();
    let mut skipped = Vec::new();
    let mut contents = Vec::new();
    for path in files {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(FileName::parse)
        else {
            skipped.push((path, "not a prometheus_client file name".to_owned()));
            continue;
        };
        #[cfg(unix)]
        if name.mode.is_some_and(GaugeMode::is_live) && dead.contains(&name.process) {
            // Another reader may have removed it first.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        match read_used(&path) {
            Ok(bytes) => contents.push((path, name, bytes)),
            // Removed by `mark_process_dead` since the listing: the process is gone.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && name.mode.is_some_and(GaugeMode::is_live) => {}
            Err(e) => skipped.push((path, e.to_string())),
        }
    }
    let read = combine(&contents, &mut skipped);
    let (families, conflicts) = merge(read);
    skipped.extend(conflicts.into_iter().map(|c| (dir.to_path_buf(), c)));
    Ok(Merged { families, skipped })
}

/// The entries of every file, the same series of files of the same type (and, for the
/// `all` gauge modes, of the same process) combined first by its merge rule, so that each
/// distinct key is parsed once however many processes wrote it; grouped by the first file
/// that has each. A file with a bad layout or a bad key is left out whole.
fn combine(
    contents: &[(PathBuf, FileName, Vec<u8>)],
    skipped: &mut Vec<(PathBuf, String)>,
) -> Vec<(FileName, Vec<(Entry, Key)>)> {
    use std::collections::HashMap;

    /// One series so far: the first file that has it, its key, value and timestamp.
    struct Combined {
        file: usize,
        key: usize,
        value: f64,
        timestamp: f64,
    }
    /// A distinct key: its text and parse (`Err` when it is bad), and its series, usually
    /// one, by the type and mode of the file, and for the `all` modes the process (as the
    /// index of its first file; `usize::MAX` for the other modes).
    struct Known<'a> {
        parsed: Result<(&'a str, Key), format::FormatError>,
        series: Vec<(MetricKind, Option<GaugeMode>, usize, usize)>,
    }
    let mut index: HashMap<&[u8], usize, foldhash::fast::RandomState> = HashMap::default();
    let mut known: Vec<Known<'_>> = Vec::new();
    let mut combined: Vec<Combined> = Vec::new();
    let mut keys: Vec<usize> = Vec::new();
    let mut processes: HashMap<&str, usize> = HashMap::new();
    for (file, (path, name, bytes)) in contents.iter().enumerate() {
        let raw = match format::raw_entries(bytes) {
            Ok(raw) => raw,
            Err(e) => {
                skipped.push((path.clone(), e.to_string()));
                continue;
            }
        };
        // Each entry's key, checked and parsed at its first sight in any file.
        keys.clear();
        let mut bad = None;
        for entry in &raw {
            let at = *index.entry(entry.key).or_insert_with(|| {
                let parsed = entry.key_text().and_then(|text| {
                    Key::parse(text).map(|key| (text, key)).map_err(|reason| {
                        format::FormatError::Key {
                            offset: entry.offset,
                            reason,
                        }
                    })
                });
                known.push(Known {
                    parsed,
                    series: Vec::new(),
                });
                known.len() - 1
            });
            if let Err(e) = &known[at].parsed {
                bad = Some(e.to_string());
                break;
            }
            keys.push(at);
        }
        if let Some(reason) = bad {
            skipped.push((path.clone(), reason));
            continue;
        }
        let process = if matches!(name.mode, Some(GaugeMode::All | GaugeMode::LiveAll)) {
            *processes.entry(name.process.as_str()).or_insert(file)
        } else {
            usize::MAX
        };
        for (entry, &key) in raw.iter().zip(&keys) {
            let series = &mut known[key].series;
            let found = series.iter().find(|(kind, mode, p, _)| {
                *kind == name.kind && *mode == name.mode && *p == process
            });
            let Some(&(_, _, _, at)) = found else {
                series.push((name.kind, name.mode, process, combined.len()));
                combined.push(Combined {
                    file,
                    key,
                    value: entry.value,
                    timestamp: entry.timestamp,
                });
                continue;
            };
            let series = &mut combined[at];
            let (v, ts) = (entry.value, entry.timestamp);
            match name.mode {
                Some(GaugeMode::Min | GaugeMode::LiveMin) => series.value = series.value.min(v),
                Some(GaugeMode::Max | GaugeMode::LiveMax) => series.value = series.value.max(v),
                Some(GaugeMode::MostRecent | GaugeMode::LiveMostRecent) => {
                    if ts > series.timestamp {
                        (series.value, series.timestamp) = (v, ts);
                    }
                }
                // The same process's file read twice: the later read wins.
                Some(GaugeMode::All | GaugeMode::LiveAll) => {
                    (series.value, series.timestamp) = (v, ts);
                }
                _ => series.value += v,
            }
        }
    }
    let mut grouped: Vec<Vec<(Entry, Key)>> = contents.iter().map(|_| Vec::new()).collect();
    for series in combined {
        let Ok((text, key)) = &known[series.key].parsed else {
            continue;
        };
        grouped[series.file].push((
            Entry {
                key: (*text).to_owned(),
                value: series.value,
                timestamp: series.timestamp,
            },
            key.clone(),
        ));
    }
    contents
        .iter()
        .zip(grouped)
        .filter(|(_, entries)| !entries.is_empty())
        .map(|((_, name, _), entries)| (name.clone(), entries))
        .collect()
}

/// Removes the `live*` gauge files of the processes `dead`.
#[cfg(unix)]
fn remove_live_files(dir: &Path, dead: &[String]) {
    for id in dead {
        for mode in GaugeMode::ALL.into_iter().filter(|m| m.is_live()) {
            let _ = std::fs::remove_file(dir.join(format!("gauge_{mode}_{id}.db")));
        }
    }
}

/// The bytes of a file that its header says are in use (files are larger than that, and
/// prometheus_client's start at 1 MiB): the header, then the rest. Shorter than its header
/// says, the bytes it has (which the format then refuses).
fn read_used(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(4096);
    (&mut file).take(8).read_to_end(&mut bytes)?;
    if let Some(header) = bytes.get(..4) {
        let used = u32::from_ne_bytes(header.try_into().unwrap_or_default());
        if used > 8 {
            (&mut file)
                .take(u64::from(used) - 8)
                .read_to_end(&mut bytes)?;
        }
    }
    Ok(bytes)
}

/// Merges files already read; returns the families and a reason for each entry left out.
pub(super) fn merge(files: Vec<(FileName, Vec<(Entry, Key)>)>) -> (Vec<MetricFamily>, Vec<String>) {
    let mut accs: BTreeMap<String, Acc> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, entries) in files {
        for (entry, key) in entries {
            let acc = accs.entry(key.metric.clone()).or_insert_with(|| Acc {
                kind: file.kind,
                mode: file.mode,
                help: key.help.clone(),
                values: BTreeMap::new(),
                buckets: BTreeMap::new(),
            });
            if acc.kind != file.kind || acc.mode != file.mode {
                problems.push(format!(
                    "{}: written as {} by process {} but as {} elsewhere",
                    key.metric,
                    describe(file.kind, file.mode),
                    file.process,
                    describe(acc.kind, acc.mode),
                ));
                continue;
            }
            if let Err(reason) = add(acc, &file, entry, key) {
                problems.push(reason);
            }
        }
    }
    let families = accs
        .into_iter()
        .filter_map(|(name, acc)| finish(name, acc, &mut problems))
        .collect();
    (families, problems)
}

fn describe(kind: MetricKind, mode: Option<GaugeMode>) -> String {
    match mode {
        Some(mode) => format!("a {mode} gauge"),
        None => format!("a {}", kind.prometheus_name()),
    }
}

fn add(acc: &mut Acc, file: &FileName, entry: Entry, key: Key) -> Result<(), String> {
    let Key {
        metric,
        sample,
        mut labels,
        ..
    } = key;
    let suffix = sample.strip_prefix(metric.as_str()).unwrap_or("?");
    let unexpected = || {
        format!(
            "{metric}: unexpected sample {sample:?} in a {}",
            file.kind.prometheus_name()
        )
    };
    match (file.kind, suffix) {
        (MetricKind::Counter, "_total") | (MetricKind::Summary, "_count" | "_sum") => {
            acc.values.entry((sample, labels)).or_insert((0.0, 0.0)).0 += entry.value;
        }
        (MetricKind::Gauge, "") => {
            let mode = file.mode.unwrap_or(GaugeMode::All);
            if matches!(mode, GaugeMode::All | GaugeMode::LiveAll) {
                if labels.iter().any(|(k, _)| k == "pid") {
                    return Err(format!(
                        "{metric}: a gauge in mode {mode} has its own `pid` label"
                    ));
                }
                labels.push(("pid".to_owned(), file.process.clone()));
                labels.sort();
            } else {
                labels.retain(|(k, _)| k != "pid");
            }
            let (v, ts) = (entry.value, entry.timestamp);
            match acc.values.entry((sample, labels)) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    // A `mostrecent` value counts only once it has been set (timestamp > 0).
                    if !matches!(mode, GaugeMode::MostRecent | GaugeMode::LiveMostRecent)
                        || ts > 0.0
                    {
                        slot.insert((v, ts));
                    }
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let current = slot.get_mut();
                    match mode {
                        GaugeMode::Min | GaugeMode::LiveMin if v < current.0 => *current = (v, ts),
                        GaugeMode::Max | GaugeMode::LiveMax if v > current.0 => *current = (v, ts),
                        GaugeMode::Sum | GaugeMode::LiveSum => current.0 += v,
                        GaugeMode::MostRecent | GaugeMode::LiveMostRecent if ts > current.1 => {
                            *current = (v, ts);
                        }
                        // All/LiveAll keep one series per process: the same labels again is
                        // the same process's file read twice; the later read wins.
                        GaugeMode::All | GaugeMode::LiveAll => *current = (v, ts),
                        _ => {}
                    }
                }
            }
        }
        (MetricKind::Histogram, "_bucket") => {
            let Some(at) = labels.iter().position(|(k, _)| k == "le") else {
                return Err(format!("{metric}: a bucket without `le`"));
            };
            let (_, le) = labels.remove(at);
            let bound: f64 = le
                .parse()
                .ok()
                .filter(|b: &f64| !b.is_nan())
                .ok_or_else(|| format!("{metric}: bucket bound {le:?} is not a number"))?;
            let (buckets, _) = acc.buckets.entry(labels).or_default();
            match buckets.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, n)) => *n += entry.value,
                None => buckets.push((bound, entry.value)),
            }
        }
        (MetricKind::Histogram, "_sum") => acc.buckets.entry(labels).or_default().1 += entry.value,
        // prometheus_client derives `_count` from the buckets; so does this.
        (MetricKind::Histogram, "_count") => {}
        _ => return Err(unexpected()),
    }
    Ok(())
}

/// A count stored as a float, as a `u64`.
fn count(v: f64) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (v.is_finite() && v >= 0.0 && v <= 2f64.powi(64)).then(|| v.round() as u64)
}

fn finish(name: String, acc: Acc, problems: &mut Vec<String>) -> Option<MetricFamily> {
    let mut family = MetricFamily::new(name.clone(), acc.help, acc.kind);
    match acc.kind {
        MetricKind::Counter | MetricKind::Gauge => {
            for ((_, labels), (v, _)) in acc.values {
                let value = if acc.kind == MetricKind::Counter {
                    MetricValue::counter(v)
                } else {
                    MetricValue::gauge(v)
                };
                family.samples.push((labels, value));
            }
        }
        MetricKind::Summary => {
            let mut by_labels: BTreeMap<Labels, (f64, f64)> = BTreeMap::new();
            for ((sample, labels), (v, _)) in acc.values {
                let slot = by_labels.entry(labels).or_default();
                if sample.ends_with("_count") {
                    slot.0 = v;
                } else {
                    slot.1 = v;
                }
            }
            for (labels, (n, sum)) in by_labels {
                let Some(n) = count(n) else {
                    problems.push(format!("{name}: summary count {n} is not a count"));
                    continue;
                };
                family
                    .samples
                    .push((labels, MetricValue::summary([], sum, n)));
            }
        }
        MetricKind::Histogram => {
            for (labels, (mut buckets, sum)) in acc.buckets {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut total = 0.0;
                let mut finite = Vec::with_capacity(buckets.len());
                let mut ok = true;
                for (bound, n) in buckets {
                    total += n;
                    let Some(cumulative) = count(total) else {
                        ok = false;
                        break;
                    };
                    if bound.is_finite() {
                        finite.push((bound, cumulative));
                    }
                }
                match (ok, count(total)) {
                    (true, Some(n)) => family
                        .samples
                        .push((labels, MetricValue::histogram(finite, n, sum))),
                    _ => problems.push(format!("{name}: bucket counts are not counts")),
                }
            }
        }
        MetricKind::Info | MetricKind::Unknown => return None,
    }
    Some(family)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(metric: &str, sample: &str, labels: &[(&str, &str)]) -> Key {
        let mut labels: Labels = labels
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        labels.sort();
        Key {
            metric: metric.to_owned(),
            sample: sample.to_owned(),
            labels,
            help: "h".to_owned(),
        }
    }

    fn entry(value: f64, timestamp: f64) -> Entry {
        Entry {
            key: String::new(),
            value,
            timestamp,
        }
    }

    fn gauge_file(
        mode: GaugeMode,
        process: &str,
        values: &[(f64, f64)],
    ) -> (FileName, Vec<(Entry, Key)>) {
        (
            FileName {
                kind: MetricKind::Gauge,
                mode: Some(mode),
                process: process.to_owned(),
            },
            values
                .iter()
                .map(|&(v, ts)| (entry(v, ts), key("g", "g", &[("a", "b")])))
                .collect(),
        )
    }

    fn values(family: &MetricFamily) -> Vec<(Labels, f64)> {
        family
            .samples
            .iter()
            .map(|(l, v)| match v.as_ref() {
                crate::ValueRef::Gauge(n) => (l.clone(), n.as_f64()),
                crate::ValueRef::Counter(c) => (l.clone(), c.value().as_f64()),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn file_names_as_prometheus_client_writes_them() {
        let parse = FileName::parse;
        assert_eq!(parse("counter_12.db").unwrap().process, "12");
        assert_eq!(
            parse("gauge_livesum_7.db").unwrap().mode,
            Some(GaugeMode::LiveSum)
        );
        for foreign in [
            "app.db",
            "counter.db",
            "counter_.db",
            "gauge_12.db",
            "gauge_bogus_12.db",
            "counter_1_2.db",
            "histogram_3.db-journal",
            "info_3.db",
        ] {
            assert_eq!(parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn every_gauge_mode_merges_as_prometheus_client_does() {
        let merged = |mode| {
            let files = vec![
                gauge_file(mode, "1", &[(3.0, 10.0)]),
                gauge_file(mode, "2", &[(-1.0, 30.0)]),
                gauge_file(mode, "3", &[(5.0, 20.0)]),
            ];
            let (families, problems) = merge(files);
            assert_eq!(problems, Vec::<String>::new());
            values(&families[0])
        };
        let ab = vec![("a".to_owned(), "b".to_owned())];
        for mode in GaugeMode::ALL {
            let got = merged(mode);
            let want = match mode {
                GaugeMode::All | GaugeMode::LiveAll => ["1", "2", "3"]
                    .iter()
                    .zip([3.0, -1.0, 5.0])
                    .map(|(p, v)| {
                        let mut l = ab.clone();
                        l.push(("pid".to_owned(), (*p).to_owned()));
                        (l, v)
                    })
                    .collect(),
                GaugeMode::Min | GaugeMode::LiveMin => vec![(ab.clone(), -1.0)],
                GaugeMode::Max | GaugeMode::LiveMax => vec![(ab.clone(), 5.0)],
                GaugeMode::Sum | GaugeMode::LiveSum => vec![(ab.clone(), 7.0)],
                GaugeMode::MostRecent | GaugeMode::LiveMostRecent => vec![(ab.clone(), -1.0)],
            };
            assert_eq!(got, want, "{mode}");
        }
    }

    #[test]
    fn a_mostrecent_gauge_never_set_is_not_shown() {
        let (families, _) = merge(vec![gauge_file(GaugeMode::MostRecent, "1", &[(0.0, 0.0)])]);
        assert_eq!(values(&families[0]), []);
    }

    #[test]
    fn histogram_buckets_are_summed_then_made_cumulative() {
        let file = |process: &str, counts: [f64; 3], sum: f64| {
            let mut entries: Vec<(Entry, Key)> = ["0.5", "1.0", "+Inf"]
                .iter()
                .zip(counts)
                .map(|(le, n)| (entry(n, 0.0), key("h", "h_bucket", &[("le", le)])))
                .collect();
            entries.push((entry(sum, 0.0), key("h", "h_sum", &[])));
            (
                FileName {
                    kind: MetricKind::Histogram,
                    mode: None,
                    process: process.to_owned(),
                },
                entries,
            )
        };
        let (families, problems) = merge(vec![
            file("1", [1.0, 2.0, 0.0], 2.5),
            file("2", [0.0, 1.0, 3.0], 30.0),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let crate::ValueRef::Histogram(h) = families[0].samples[0].1.as_ref() else {
            unreachable!()
        };
        assert_eq!(h.bounds(), [0.5, 1.0]);
        assert_eq!(h.cumulative_counts(), [1, 4, 7]);
        assert_eq!(h.sum(), 32.5);
    }

    #[test]
    fn a_metric_of_two_types_keeps_the_first_and_reports_the_other() {
        let counter = (
            FileName {
                kind: MetricKind::Counter,
                mode: None,
                process: "1".to_owned(),
            },
            vec![(entry(2.0, 0.0), key("g", "g_total", &[("a", "b")]))],
        );
        let (families, problems) = merge(vec![
            counter,
            gauge_file(GaugeMode::Sum, "2", &[(1.0, 0.0)]),
        ]);
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].kind, MetricKind::Counter);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("process 2"), "{problems:?}");
    }
}
