//! Multi-process mode: one view of the metrics of a service that runs as several processes,
//! read from the directory of files that prometheus_client's multi-process mode writes.
//!
//! # When you need it
//!
//! Not for a multi-threaded server: tokio's workers and actix-web's workers are threads of one
//! process, and one [`Registry`](crate::Registry) already sees all of them. You need it when a
//! service really is several processes and a scrape reaches only one of them: a pre-fork
//! server, several processes behind one `SO_REUSEPORT` port, Python workers under gunicorn
//! (with or without Rust extension modules). Without it, each scrape shows one worker's
//! counters and Prometheus sees them jump back and forth.
//!
//! # What this module does today
//!
//! [`MultiProcessCollector`] reads a directory written by Python's `prometheus_client` in
//! multi-process mode (`PROMETHEUS_MULTIPROC_DIR`) and merges it with Python's rules, so a
//! Rust process (a sidecar, a supervisor, the process that answers `/metrics`) can serve the
//! workers' metrics with the rest of its own:
//!
//! | type | merged |
//! |---|---|
//! | counter, summary (`_count`, `_sum`) | summed across processes |
//! | histogram | buckets summed per bound, then made cumulative; `_count` is the `+Inf` bucket |
//! | gauge | by the mode in its file name, see [`GaugeMode`] |
//!
//! Bad input loses only itself: a truncated or corrupt file, a file whose name is not
//! prometheus_client's, a foreign `*.db` file (SQLite, say) or an entry of the wrong shape
//! leaves that file out of the scrape and counts one in
//! `vitals_collector_errors_total{collector="<name>"}`; the rest is served. A `live*` gauge file
//! removed between listing and reading (by [`mark_process_dead`]) is not an error.
//!
//! ```
//! use vitals_core::multiprocess::MultiProcessCollector;
//! use vitals_core::Registry;
//!
//! let dir = std::env::temp_dir().join(format!("vitals-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let registry = Registry::new();
//! registry.register_collector("multiprocess", MultiProcessCollector::new(&dir)?)?;
//! print!("{}", vitals_core::encoding::text::encode(&registry));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(unix)]
mod compact;
mod format;
#[cfg(unix)]
mod mapped;
mod merge;
#[cfg(unix)]
mod series;
#[cfg(unix)]
mod store;

#[cfg(unix)]
pub(crate) use mapped::Cell;
#[cfg(unix)]
pub(crate) use series::{FamilyFiles, Series};
#[cfg(unix)]
pub(crate) use store::{FileKind, ProcessStore};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::{fmt, io};

use crate::collector::{CollectError, Collector, MetricFamily};

/// The environment variable prometheus_client reads the directory from.
pub const DIR_ENV: &str = "PROMETHEUS_MULTIPROC_DIR";

/// How a gauge's values from several processes become one, by prometheus_client's names
/// (the `<mode>` in a `gauge_<mode>_<process>.db` file name).
///
/// The `live` modes are the same rules over the processes still running: their files are
/// removed when a process is marked dead ([`mark_process_dead`]), so that, for example, the
/// in-flight requests of a crashed worker stop counting. The other modes keep the values of
/// dead processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GaugeMode {
    /// One series per process, with a `pid` label (prometheus_client's default).
    All,
    /// As `All`, over the live processes.
    LiveAll,
    /// The smallest value.
    Min,
    /// The smallest value of the live processes.
    LiveMin,
    /// The largest value.
    Max,
    /// The largest value of the live processes.
    LiveMax,
    /// The sum.
    Sum,
    /// The sum over the live processes (in-flight requests, open connections).
    LiveSum,
    /// The value set last (by its timestamp).
    MostRecent,
    /// The value set last among the live processes.
    LiveMostRecent,
}

impl GaugeMode {
    /// Every mode.
    pub const ALL: [Self; 10] = [
        Self::All,
        Self::LiveAll,
        Self::Min,
        Self::LiveMin,
        Self::Max,
        Self::LiveMax,
        Self::Sum,
        Self::LiveSum,
        Self::MostRecent,
        Self::LiveMostRecent,
    ];

    /// prometheus_client's name of the mode, as in file names.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::LiveAll => "liveall",
            Self::Min => "min",
            Self::LiveMin => "livemin",
            Self::Max => "max",
            Self::LiveMax => "livemax",
            Self::Sum => "sum",
            Self::LiveSum => "livesum",
            Self::MostRecent => "mostrecent",
            Self::LiveMostRecent => "livemostrecent",
        }
    }

    /// The mode of prometheus_client's name `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the mode counts only the processes still running.
    #[must_use]
    pub fn is_live(self) -> bool {
        self.name().starts_with("live")
    }
}

impl fmt::Display for GaugeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads and merges a multi-process directory at every scrape (see the [module
/// documentation](self)).
///
/// Register it on a fresh [`Registry`](crate::Registry), or beside metrics that are not
/// written to the directory: a metric registered on the same registry under a name the
/// directory also holds makes the directory's family a conflict, left out and counted as a
/// collector error, rather than two families of one name.
#[derive(Debug)]
pub struct MultiProcessCollector {
    dir: PathBuf,
    skipped: AtomicU64,
}

impl MultiProcessCollector {
    /// A collector of the directory `dir`.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] naming the directory when it does not exist or is not a directory.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = std::fs::metadata(&dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("multi-process directory {}: {e}", dir.display()),
            )
        })?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "multi-process directory {} is not a directory",
                    dir.display()
                ),
            ));
        }
        Ok(Self {
            dir,
            skipped: AtomicU64::new(0),
        })
    }

    /// A collector of the directory in `PROMETHEUS_MULTIPROC_DIR` (or prometheus_client's
    /// older lower-case `prometheus_multiproc_dir`).
    ///
    /// # Errors
    ///
    /// An [`io::Error`] when neither variable is set, or as for [`new`](Self::new).
    pub fn from_env() -> io::Result<Self> {
        Self::new(dir_from_env()?)
    }

    /// The directory read.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads and merges the directory once, and says which files were left out and why.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] when the directory cannot be listed.
    pub fn read(&self) -> io::Result<Merged> {
        let merged = merge::read_dir(&self.dir)?;
        self.skipped
            .fetch_add(merged.skipped.len() as u64, Ordering::Relaxed);
        Ok(merged)
    }
}

impl Collector for MultiProcessCollector {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectError> {
        Ok(self.read()?.families)
    }

    fn skipped_total(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// This process's name in the file names of its multi-process directory (its pid, or
/// `<pid>-<n>` when files of that pid were already there); `None` until a
/// [`Registry::multiprocess`](crate::Registry::multiprocess) is made. A forked child has its
/// own.
#[cfg(unix)]
#[must_use]
pub fn process_id() -> Option<String> {
    store::ProcessStore::current().map(ProcessStore::id)
}

/// Reads and merges `dir` once, for a registry in multi-process mode.
#[cfg(unix)]
pub(crate) fn read_merged(dir: &Path) -> io::Result<Merged> {
    merge::read_dir(dir)
}

/// The directory in `PROMETHEUS_MULTIPROC_DIR` (or prometheus_client's older lower-case
/// `prometheus_multiproc_dir`).
pub(crate) fn dir_from_env() -> io::Result<PathBuf> {
    std::env::var_os(DIR_ENV)
        .or_else(|| std::env::var_os("prometheus_multiproc_dir"))
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{DIR_ENV} is not set: set it to the directory the processes share"),
            )
        })
}

/// One reading of a multi-process directory.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Merged {
    /// The merged families, sorted by name.
    pub families: Vec<MetricFamily>,
    /// The files left out, each with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Removes the `live*` gauge files of the process `pid` from `dir`, as prometheus_client's
/// `mark_process_dead` does, so that its live gauges stop counting; its counters, histograms,
/// summaries and non-live gauges stay, so that totals never go backwards. Returns how many
/// files were removed. Call it when a worker exits (gunicorn's `child_exit` hook, a
/// supervisor's `waitpid`).
///
/// # Errors
///
/// An [`io::Error`] when the directory cannot be listed or a file cannot be removed; a file
/// already gone is not an error.
pub fn mark_process_dead(dir: impl AsRef<Path>, pid: u32) -> io::Result<usize> {
    let dir = dir.as_ref();
    let mut removed = 0;
    for mode in GaugeMode::ALL.into_iter().filter(|m| m.is_live()) {
        let path = dir.join(format!("gauge_{mode}_{pid}.db"));
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("removing {}: {e}", path.display()),
                ))
            }
        }
    }
    Ok(removed)
}
