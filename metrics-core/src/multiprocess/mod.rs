//! Multi-process mode: one view of the metrics of a service that runs as several processes.
//!
//! # When you need it
//!
//! Not for a multi-threaded server: tokio's workers and actix-web's workers are threads of one
//! process, and one [`Registry`](crate::Registry) already sees all of them. You need it when a
//! service really is several processes and a scrape reaches only one of them: a pre-fork
//! server, several processes behind one `SO_REUSEPORT` port, a CLI that forks, Python workers
//! under gunicorn (with or without Rust extension modules). Without it, each scrape shows one
//! worker's counters, and Prometheus sees them jump back and forth.
//!
//! # How it works
//!
//! Every process keeps its values in memory-mapped files of its own in one directory, in
//! prometheus_client's file format, and a scrape of any of them reads and merges the whole
//! directory:
//!
//! | type | merged |
//! |---|---|
//! | counter, summary (`_count`, `_sum`; no quantiles, as prometheus_client) | summed across processes |
//! | histogram | buckets summed per bound, then made cumulative; `_count` is the `+Inf` bucket |
//! | gauge | by the gauge's mode, see [`GaugeMode`] |
//!
//! Recording stays one atomic operation on the mapped memory (a compare-and-swap of the
//! value's `f64`): no lock, no system call, no allocation. A new series takes the process's
//! file lock once, to append its entry.
//!
//! # Setting it up
//!
//! Make the registry with [`Registry::multiprocess`](crate::Registry::multiprocess) (or
//! [`Registry::multiprocess_from_env`](crate::Registry::multiprocess_from_env), which reads
//! `PROMETHEUS_MULTIPROC_DIR` as prometheus_client does;
//! [`Registry::from_env`](crate::Registry::from_env) and the global registry turn multi-process
//! by themselves when the variable is set) and hand it to the adapters' builders as any registry. Labeled
//! families, series caps, the HTTP layers and `#[instrumented]` record into it unchanged.
//!
//! ```
//! # #[cfg(unix)] {
//! use vitals_core::multiprocess::GaugeMode;
//! use vitals_core::Registry;
//!
//! let dir = std::env::temp_dir().join(format!("vitals-doc-mp-{}", std::process::id()));
//! let registry = Registry::multiprocess(&dir)?;
//! let jobs = registry.counter("jobs", "Jobs done.").register()?;
//! let queue = registry
//!     .gauge("queue_depth", "Jobs waiting.")
//!     .multiprocess_mode(GaugeMode::LiveSum)
//!     .register()?;
//! jobs.inc();
//! queue.set(3);
//! // Any process's scrape: the sums over every process writing to `dir`.
//! assert_eq!(registry.get_sample_value("jobs_total", &[]), Some(1.0));
//! # std::fs::remove_dir_all(&dir)?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Under a supervisor, give every worker the same directory, a fresh one per start of the
//! service, and have the supervisor call [`mark_process_dead`] when a worker exits (or let the
//! next scrape find out, below). `examples/prefork-app` is a supervisor with axum workers on one
//! port. Next to Python workers, point `PROMETHEUS_MULTIPROC_DIR` of both at one directory:
//! each side reads the other's files, and either may serve the scrape.
//!
//! A process writes to one directory: every multi-process registry it makes shares one set of
//! files, and asking for another directory is an error.
//!
//! # Processes that come and go
//!
//! - **A crash.** Each vitals process holds an advisory lock (`flock`) on its own
//!   `vitals_<id>.lock` for as long as it lives; the kernel drops it however the process ends,
//!   `SIGKILL` included. The next scrape that finds the lock free treats the process as dead:
//!   its `live*` gauges (in-flight requests, say) stop counting at once. Its counters,
//!   histograms and other gauges are kept, so totals never go backwards.
//! - **Compaction.** The same scrape folds the dead process's files into one
//!   `<type>_archive.db` per type, so that a scrape reads a bounded number of files however
//!   many workers have come and gone (prometheus_client's scrapes slow down as dead workers'
//!   files pile up). The `all` gauges of a dead process (one series per process) leave the
//!   view, as its live gauges do. Compaction holds `vitals.lock` exclusively, and vitals
//!   readers hold it shared while they read, so a vitals scrape never sees a total go down. A
//!   prometheus_client reader takes no lock: one that lists the directory in the instant
//!   between an archive's rename and the removal of the files it replaces may count those
//!   files twice, or fail that one scrape on a file gone, once per dead process.
//! - **Pid reuse and old directories.** A process names its files by its pid, or `<pid>-<n>`
//!   when files of that pid are already there (a reused pid, always 1 in a container): it
//!   never writes into another process's file. A directory in which no vitals process is alive
//!   is from an earlier run: the first process to start clears the vitals files in it (never
//!   prometheus_client's, which carry no lock), so that a restart of the whole service starts
//!   from zero, as a restart of one process would. A supervisor that opens the directory
//!   itself, as `prefork-app` does, keeps its workers' restarts in one run.
//! - **Fork.** A forked child gets files of its own before `fork` returns in it, at the same
//!   addresses: the handles it inherited count for it, from zero, and never write into its
//!   parent's file. (Fork from a thread that is not creating series; as anywhere, a child of a
//!   multi-threaded parent can only trust what was consistent at the fork.)
//!
//! # Bounds and what is not shared
//!
//! A file holds at most 64 MiB (about 300,000 series with 200-byte keys); a series that does
//! not fit stays in the process's memory and is counted in
//! `vitals_collector_errors_total{collector="multiprocess"}`, with files left out of a scrape
//! (truncated, corrupt, foreign, named as prometheus_client never names them). Removing a
//! series ([`Family::remove`](crate::Family::remove)) does not take it out of the merged
//! view: the directory keeps what was recorded, and a counter, histogram or summary recorded
//! again goes on from its total (a gauge starts again from zero). Custom collectors, info metrics and vitals'
//! own counters (`vitals_*`) stay per process: the scrape shows those of the process that
//! answers. Exemplars and `_created` samples are not in the file format and are not shown.
//!
//! # Reading a directory without writing to it
//!
//! [`MultiProcessCollector`] reads and merges a directory on any registry, for a process that
//! serves the metrics of workers without recording into the directory itself (a sidecar, a
//! Python service's Rust supervisor):
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
//!
//! Bad input loses only itself: a truncated or corrupt file, a file whose name is not
//! prometheus_client's, a foreign `*.db` file (SQLite, say) or an entry of the wrong shape
//! leaves that file out of the scrape and counts one in
//! `vitals_collector_errors_total{collector="<name>"}` per scrape that leaves it out; the rest
//! is served. A `live*` gauge file removed between listing and reading is not an error.

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
