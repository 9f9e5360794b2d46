//! Compaction: the files of dead vitals processes folded into one archive file per type, so
//! that a scrape reads a bounded number of files however many workers have come and gone.
//!
//! Only files of vitals processes known to be dead (their liveness lock free) are folded, and
//! only under the directory lock held exclusively, which vitals readers hold shared while
//! they read: a vitals reader sees the archive before or after, never both at once. A
//! prometheus_client reader takes no lock; one that lists the directory in the instant
//! between the new archive's rename and the removal of the files it replaces may count those
//! files twice for that one scrape.
//!
//! | file of a dead process | folded into | how |
//! |---|---|---|
//! | `counter_*`, `histogram_*`, `summary_*` | `<type>_archive.db` | summed per series |
//! | `gauge_sum_*`, `gauge_min_*`, `gauge_max_*` | `gauge_<mode>_archive.db` | sum, min, max |
//! | `gauge_mostrecent_*` | `gauge_mostrecent_archive.db` | the latest set |
//! | `gauge_all_*` | nothing: removed | a dead process's own series, as its live gauges are |

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::format::{self, Key};
use super::store::FileKind;
use super::GaugeMode;

/// The process name of archive files.
pub(crate) const ARCHIVE: &str = "archive";

/// The files that compaction folds, and the gauge files it removes.
const FOLDED: [FileKind; 8] = [
    FileKind::Counter,
    FileKind::Histogram,
    FileKind::Summary,
    FileKind::Gauge(GaugeMode::Sum),
    FileKind::Gauge(GaugeMode::Min),
    FileKind::Gauge(GaugeMode::Max),
    FileKind::Gauge(GaugeMode::MostRecent),
    FileKind::Gauge(GaugeMode::All),
];

/// Folds the files of the dead processes `dead` into the archives; the caller holds the
/// directory lock exclusively. Returns how many files were removed. A file that cannot be
/// read whole is left where it is (the scrape then counts it), never folded in part.
pub(crate) fn compact(dir: &Path, dead: &[String]) -> io::Result<usize> {
    let mut removed = 0;
    for kind in FOLDED {
        let sources: Vec<_> = dead
            .iter()
            .map(|id| dir.join(kind.file_name(id)))
            .filter(|p| p.exists())
            .collect();
        if sources.is_empty() {
            continue;
        }
        if kind == FileKind::Gauge(GaugeMode::All) {
            for source in &sources {
                remove(source, &mut removed)?;
            }
            continue;
        }
        let archive = dir.join(kind.file_name(ARCHIVE));
        let mut folded = Folded::default();
        match std::fs::read(&archive) {
            Ok(bytes) => folded.add(kind, &bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", archive.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut taken = Vec::new();
        for source in sources {
            let Ok(bytes) = std::fs::read(&source) else {
                continue;
            };
            if folded.add(kind, &bytes).is_ok() {
                taken.push(source);
            }
        }
        if taken.is_empty() {
            continue;
        }
        let staging = archive.with_extension("db.new");
        std::fs::write(&staging, format::write(&folded.entries()))?;
        std::fs::rename(&staging, &archive)?;
        for source in &taken {
            remove(source, &mut removed)?;
        }
    }
    for id in dead {
        // Last: while its lock file is there, the process's files are known to be a vitals
        // process's, and its id stays taken.
        let _ = std::fs::remove_file(dir.join(format!("vitals_{id}.lock")));
    }
    Ok(removed)
}

fn remove(path: &Path, removed: &mut usize) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            *removed += 1;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A series: its metric, sample name and sorted labels.
type SeriesKey = (String, String, Vec<(String, String)>);

/// Entries being folded, by series: the first key text seen, the value and the timestamp.
#[derive(Default)]
struct Folded {
    series: BTreeMap<SeriesKey, (String, f64, f64)>,
}

impl Folded {
    /// Folds one file's entries in, or none of them when the file is not whole.
    fn add(&mut self, kind: FileKind, bytes: &[u8]) -> Result<(), format::FormatError> {
        for (entry, key) in format::entries(bytes)? {
            let Key {
                metric,
                sample,
                labels,
                ..
            } = key;
            let (v, ts) = (entry.value, entry.timestamp);
            match self.series.entry((metric, sample, labels)) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((entry.key, v, ts));
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let (_, value, stamp) = slot.get_mut();
                    match kind {
                        FileKind::Gauge(GaugeMode::Min) => *value = value.min(v),
                        FileKind::Gauge(GaugeMode::Max) => *value = value.max(v),
                        FileKind::Gauge(GaugeMode::MostRecent) if ts > *stamp => {
                            (*value, *stamp) = (v, ts);
                        }
                        FileKind::Gauge(GaugeMode::MostRecent) => {}
                        _ => *value += v,
                    }
                }
            }
        }
        Ok(())
    }

    fn entries(self) -> Vec<(String, f64, f64)> {
        self.series.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vitals-compact-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn file(entries: &[(&str, f64, f64)]) -> Vec<u8> {
        let owned: Vec<_> = entries
            .iter()
            .map(|&(k, v, t)| (k.to_owned(), v, t))
            .collect();
        format::write(&owned)
    }

    fn read(path: &Path) -> Vec<(String, f64, f64)> {
        format::entries(&std::fs::read(path).unwrap())
            .unwrap()
            .into_iter()
            .map(|(e, _)| (e.key, e.value, e.timestamp))
            .collect()
    }

    #[test]
    fn dead_files_fold_into_archives_by_the_merge_rules() {
        let dir = temp_dir("fold");
        let jobs = r#"["jobs", "jobs_total", {}, "Jobs."]"#;
        let other = r#"["jobs", "jobs_total", {"q": "a"}, "Jobs."]"#;
        let temp = r#"["t", "t", {}, "T."]"#;
        std::fs::write(dir.join("counter_1.db"), file(&[(jobs, 2.0, 0.0)])).unwrap();
        std::fs::write(
            dir.join("counter_2.db"),
            file(&[(jobs, 3.0, 0.0), (other, 1.0, 0.0)]),
        )
        .unwrap();
        std::fs::write(dir.join("counter_archive.db"), file(&[(jobs, 10.0, 0.0)])).unwrap();
        std::fs::write(dir.join("gauge_max_1.db"), file(&[(temp, 7.0, 0.0)])).unwrap();
        std::fs::write(dir.join("gauge_max_2.db"), file(&[(temp, 4.0, 0.0)])).unwrap();
        std::fs::write(
            dir.join("gauge_mostrecent_1.db"),
            file(&[(temp, 1.0, 50.0)]),
        )
        .unwrap();
        std::fs::write(
            dir.join("gauge_mostrecent_2.db"),
            file(&[(temp, 2.0, 40.0)]),
        )
        .unwrap();
        std::fs::write(dir.join("gauge_all_1.db"), file(&[(temp, 1.0, 0.0)])).unwrap();
        // A live process's file and a corrupt dead one stay where they are.
        std::fs::write(dir.join("counter_3.db"), file(&[(jobs, 100.0, 0.0)])).unwrap();
        std::fs::write(dir.join("histogram_1.db"), b"SQLite format 3\0").unwrap();
        for id in ["1", "2"] {
            std::fs::write(dir.join(format!("vitals_{id}.lock")), b"").unwrap();
        }

        let removed = compact(&dir, &["1".to_owned(), "2".to_owned()]).unwrap();
        assert_eq!(removed, 7);
        assert_eq!(
            read(&dir.join("counter_archive.db")),
            [(jobs.to_owned(), 15.0, 0.0), (other.to_owned(), 1.0, 0.0)]
        );
        assert_eq!(
            read(&dir.join("gauge_max_archive.db")),
            [(temp.to_owned(), 7.0, 0.0)]
        );
        assert_eq!(
            read(&dir.join("gauge_mostrecent_archive.db")),
            [(temp.to_owned(), 1.0, 50.0)]
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "counter_3.db",
                "counter_archive.db",
                "gauge_max_archive.db",
                "gauge_mostrecent_archive.db",
                "histogram_1.db"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
