//! This process's files in a multi-process directory: which process it is, the entries it has
//! written, and what happens to them when the process forks.
//!
//! # The directory's files
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `<type>_<id>.db`, `gauge_<mode>_<id>.db` | the process `<id>` | its series, in prometheus_client's format |
//! | `vitals_<id>.lock` | the process `<id>` | nothing: an exclusive `flock` held while it lives |
//! | `vitals.lock` | every vitals process | nothing: a `flock` taken while a process picks its id |
//!
//! `<id>` is the pid, or `<pid>-<n>` when files of that pid are already there (a reused pid,
//! always 1 in a container, or a directory kept from an earlier run): a new process never
//! writes into an old one's file. prometheus_client ignores the `.lock` files.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use super::mapped::{self, Cell, MappedFile};
use super::GaugeMode;

/// The file a series' entries go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    Counter,
    Gauge(GaugeMode),
    Histogram,
    Summary,
}

impl FileKind {
    pub(crate) fn file_name(self, id: &str) -> String {
        match self {
            Self::Counter => format!("counter_{id}.db"),
            Self::Gauge(mode) => format!("gauge_{mode}_{id}.db"),
            Self::Histogram => format!("histogram_{id}.db"),
            Self::Summary => format!("summary_{id}.db"),
        }
    }
}

/// The one store of this process (a process writes to one directory).
static STORE: OnceLock<ProcessStore> = OnceLock::new();
/// Serialises opening the store.
static OPENING: Mutex<()> = Mutex::new(());

/// This process's files in its multi-process directory.
#[derive(Debug)]
pub(crate) struct ProcessStore {
    dir: PathBuf,
    state: Mutex<State>,
    /// Series whose entry could not be written (the file full or unwritable), kept in memory
    /// only; and forked children that could not make their own files.
    failures: AtomicU64,
}

#[derive(Debug)]
struct State {
    id: String,
    /// Holds this process's liveness lock for as long as it is open.
    lock: File,
    files: Vec<Entries>,
}

#[derive(Debug)]
struct Entries {
    kind: FileKind,
    mapped: MappedFile,
    /// Each key's value offset.
    index: HashMap<Box<str>, usize>,
    /// The keys in file order, to rebuild the file in a forked child.
    keys: Vec<Box<str>>,
}

impl ProcessStore {
    /// The store of this process, opened on `dir` the first time.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] naming the directory when it cannot be created, locked or written, or
    /// when this process already writes to another directory.
    pub(crate) fn open(dir: &Path) -> io::Result<&'static Self> {
        let _opening = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = STORE.get() {
            return if same_dir(&store.dir, dir) {
                Ok(store)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "this process already writes its multi-process files to {}; it cannot \
                         also write to {}",
                        store.dir.display(),
                        dir.display()
                    ),
                ))
            };
        }
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("multi-process directory {}: {e}", dir.display()),
            )
        };
        std::fs::create_dir_all(dir).map_err(context)?;
        let (id, lock) = claim_id(dir, true).map_err(context)?;
        let store = Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                id,
                lock,
                files: Vec::new(),
            }),
            failures: AtomicU64::new(0),
        };
        let store = STORE.get_or_init(|| store);
        mapped::at_fork(prepare_fork, parent_after_fork, child_after_fork).map_err(context)?;
        Ok(store)
    }

    /// The store, once opened.
    pub(crate) fn current() -> Option<&'static Self> {
        STORE.get()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// This process's id in file names.
    pub(crate) fn id(&self) -> String {
        self.state().id.clone()
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cell of `key` in the file of `kind`, its entry written first if it is new; `None`
    /// (counted) when it cannot be written.
    pub(crate) fn cell(&self, kind: FileKind, key: &str) -> Option<Cell> {
        let result = self.state().cell(&self.dir, kind, key);
        if result.is_none() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl State {
    fn cell(&mut self, dir: &Path, kind: FileKind, key: &str) -> Option<Cell> {
        let position = match self.files.iter().position(|f| f.kind == kind) {
            Some(position) => position,
            None => {
                let file = create(&dir.join(kind.file_name(&self.id))).ok()?;
                self.files.push(Entries {
                    kind,
                    mapped: MappedFile::new(file).ok()?,
                    index: HashMap::new(),
                    keys: Vec::new(),
                });
                self.files.len() - 1
            }
        };
        let entries = &mut self.files[position];
        if let Some(&offset) = entries.index.get(key) {
            return entries.mapped.cell(offset);
        }
        let bytes = entry_bytes(key)?;
        let at = entries.mapped.append(&bytes).ok()?;
        let offset = at + bytes.len() - 16;
        entries.index.insert(key.into(), offset);
        entries.keys.push(key.into());
        entries.mapped.cell(offset)
    }
}

/// An entry as prometheus_client lays it out: the key's length, the key, spaces to a multiple
/// of 8, and a zero value and timestamp.
fn entry_bytes(key: &str) -> Option<Vec<u8>> {
    let len = u32::try_from(key.len()).ok()?;
    let padding = 8 - (key.len() + 4) % 8;
    let mut bytes = Vec::with_capacity(4 + key.len() + padding + 16);
    bytes.extend_from_slice(&len.to_ne_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.resize(bytes.len() + padding, b' ');
    bytes.resize(bytes.len() + 16, 0);
    Some(bytes)
}

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// The process id of a vitals liveness lock file's name (`vitals_<id>.lock`).
pub(crate) fn lock_file_id(name: &str) -> Option<&str> {
    name.strip_prefix("vitals_")?
        .strip_suffix(".lock")
        .filter(|id| !id.is_empty() && !id.contains('_'))
}

/// Whether the vitals process `id` of `dir` is alive: `None` when it left no lock file (a
/// prometheus_client process, or one of another writer), so that nothing can be said.
pub(crate) fn is_alive(dir: &Path, id: &str) -> Option<bool> {
    let file = File::open(dir.join(format!("vitals_{id}.lock"))).ok()?;
    // A shared lock is refused while the owner holds its exclusive one; closing `file`
    // releases ours at once.
    mapped::try_lock(&file, false).ok().map(|got| !got)
}

/// The vitals processes of `dir` that have died (their liveness lock is free).
pub(crate) fn dead_processes(dir: &Path) -> std::collections::HashSet<String> {
    list(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|name| lock_file_id(name))
        .filter(|id| is_alive(dir, id) == Some(false))
        .map(str::to_owned)
        .collect()
}

/// The directory lock (`vitals.lock`), created if need be; `None` when the directory cannot
/// take it (read-only), which leaves readers without it.
pub(crate) fn dir_lock(dir: &Path) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("vitals.lock"))
        .ok()
}

/// How long a process waits for the directory lock before it goes on without it.
const DIR_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Picks this process's id, and takes its liveness lock: the pid, or `<pid>-<n>` for the
/// first `n` that no file in the directory uses. With `new_run_check` (not in a forked child,
/// whose parent is alive), under the directory lock: a directory whose vitals processes are
/// all gone is from an earlier run, and their files are removed first. A directory lock held
/// past [`DIR_LOCK_PATIENCE`] means a process is alive: no new run, nothing is removed.
fn claim_id(dir: &Path, new_run_check: bool) -> io::Result<(String, File)> {
    let dir_lock = if new_run_check {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("vitals.lock"))?;
        mapped::lock_within(&file, true, DIR_LOCK_PATIENCE)?.then_some(file)
    } else {
        None
    };
    let mut names = list(dir)?;
    let vitals_ids: Vec<String> = names
        .iter()
        .filter_map(|n| lock_file_id(n).map(str::to_owned))
        .collect();
    let archived = names.iter().any(|n| db_of(n, super::compact::ARCHIVE));
    let earlier_run = (archived || !vitals_ids.is_empty())
        && vitals_ids.iter().all(|id| is_alive(dir, id) == Some(false));
    if dir_lock.is_some() && earlier_run {
        for name in &names {
            let owned = lock_file_id(name).is_some()
                || name.ends_with(".lock.new")
                || db_of(name, super::compact::ARCHIVE)
                || vitals_ids.iter().any(|id| db_of(name, id));
            if owned {
                std::fs::remove_file(dir.join(name))?;
            }
        }
        names = list(dir)?;
    }
    let pid = std::process::id().to_string();
    let taken = |id: &str| {
        names
            .iter()
            .any(|n| db_of(n, id) || lock_file_id(n) == Some(id))
    };
    // The staging file is created new, so that two processes (without the directory lock)
    // never take one id.
    let mut candidates = std::iter::once(pid.clone())
        .chain((1u32..).map(|n| format!("{pid}-{n}")))
        .filter(|id| !taken(id));
    let (id, staging, lock) = loop {
        let Some(id) = candidates.next() else {
            return Err(io::Error::other("no process id is free"));
        };
        // Locked before it takes its name, so no reader ever sees it unlocked.
        let staging = dir.join(format!("vitals_{id}.lock.new"));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(lock) => break (id, staging, lock),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    };
    if !mapped::try_lock(&lock, true)? {
        return Err(io::Error::other(format!("{} is locked", staging.display())));
    }
    std::fs::rename(&staging, dir.join(format!("vitals_{id}.lock")))?;
    drop(dir_lock);
    Ok((id, lock))
}

/// Whether `name` is a `.db` file of the process `id`.
fn db_of(name: &str, id: &str) -> bool {
    name.strip_suffix(".db")
        .and_then(|stem| stem.rsplit_once('_'))
        .is_some_and(|(_, process)| process == id)
}

fn list(dir: &Path) -> io::Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

thread_local! {
    /// The store's state, locked by the thread that forks, from just before the fork until
    /// just after it (in the parent and in the child).
    static FORKING: std::cell::RefCell<Option<MutexGuard<'static, State>>> =
        const { std::cell::RefCell::new(None) };
}

extern "C" fn prepare_fork() {
    if let Some(store) = STORE.get() {
        let guard = store.state();
        FORKING.with(|f| *f.borrow_mut() = Some(guard));
    }
}

extern "C" fn parent_after_fork() {
    FORKING.with(|f| drop(f.borrow_mut().take()));
}

/// In a forked child: a new id, a liveness lock of its own, and new files with the same
/// entries (values zero) put under the same addresses, so that the handles the child
/// inherited count for it, not for its parent.
extern "C" fn child_after_fork() {
    let Some(mut state) = FORKING.with(|f| f.borrow_mut().take()) else {
        return;
    };
    let Some(store) = STORE.get() else {
        return;
    };
    if store_for_child(&store.dir, &mut state).is_err() {
        // Never into the parent's files: detach them, and count the loss.
        for entries in &mut state.files {
            let _ = entries.mapped.detach();
        }
        store.failures.fetch_add(1, Ordering::Relaxed);
    }
}

fn store_for_child(dir: &Path, state: &mut State) -> io::Result<()> {
    // Without the directory lock: a descriptor of it inherited from a scrape under way in
    // the parent would hold it for as long as this child lives.
    let (id, lock) = claim_id(dir, false)?;
    for entries in &mut state.files {
        let file = create(&dir.join(entries.kind.file_name(&id)))?;
        let mut bytes = vec![0u8; 8];
        for key in &entries.keys {
            bytes.extend(entry_bytes(key).ok_or_else(|| io::Error::other("key too long"))?);
        }
        let used = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        bytes[..4].copy_from_slice(&used.to_ne_bytes());
        if bytes.len() != entries.mapped.used() {
            return Err(io::Error::other("the entries do not match the file"));
        }
        file.write_all_at(&bytes, 0)?;
        entries.mapped.swap_file(file)?;
    }
    state.id = id;
    // The inherited descriptor is closed, not unlocked: the parent keeps its lock.
    state.lock = lock;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiprocess::{mapped, MultiProcessCollector};
    use crate::Registry;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vitals-store-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names = list(dir).unwrap();
        names.sort();
        names
    }

    #[test]
    fn a_taken_pid_gets_a_suffix_and_a_dead_run_is_cleared_but_python_files_stay() {
        let dir = temp_dir("claim");
        let pid = std::process::id();
        // A live process of the same pid (another container sharing the directory).
        std::fs::write(dir.join(format!("counter_{pid}.db")), b"").unwrap();
        let other = File::create(dir.join(format!("vitals_{pid}.lock"))).unwrap();
        assert!(mapped::try_lock(&other, true).unwrap());
        let (id, lock) = claim_id(&dir, true).unwrap();
        assert_eq!(id, format!("{pid}-1"));
        assert!(!mapped::try_lock(
            &File::open(dir.join(format!("vitals_{id}.lock"))).unwrap(),
            false
        )
        .unwrap());
        assert_eq!(is_alive(&dir, &id), Some(true));
        assert_eq!(is_alive(&dir, "12345"), None, "no lock file: nothing known");
        drop(lock);
        assert_eq!(is_alive(&dir, &id), Some(false));
        assert!(dead_processes(&dir).contains(&id));
        assert!(!dead_processes(&dir).contains(&pid.to_string()));

        // Everyone gone: a new run. prometheus_client's files (no lock) are left alone.
        drop(other);
        std::fs::write(dir.join("counter_777.db"), b"").unwrap();
        std::fs::write(dir.join(format!("gauge_livesum_{pid}-1.db")), b"").unwrap();
        let (id, _lock) = claim_id(&dir, true).unwrap();
        assert_eq!(id, pid.to_string());
        assert_eq!(
            names(&dir),
            [
                "counter_777.db",
                "vitals.lock",
                &format!("vitals_{pid}.lock")
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_forked_child_writes_its_own_files_never_its_parents() {
        let dir = temp_dir("fork");
        let registry = Registry::multiprocess(&dir).unwrap();
        assert!(registry.is_multiprocess());
        let jobs = registry.counter("jobs", "Jobs.").register().unwrap();
        let in_flight = registry.gauge("busy", "Busy.").register().unwrap();
        jobs.inc_by(5);
        in_flight.set(2);
        let parent = ProcessStore::current().unwrap().id();
        let child_ok = mapped::fork_and_wait(|| {
            // The child's handles start from zero, in files of its own.
            let own = ProcessStore::current().unwrap().id();
            let fresh = jobs.get() == 0 && in_flight.get() == 0 && own != parent;
            jobs.inc();
            in_flight.set(7);
            fresh
        })
        .unwrap();
        assert!(
            child_ok,
            "the child saw its parent's values, or kept its id"
        );
        assert_eq!(
            jobs.get(),
            5,
            "the child never wrote into the parent's file"
        );
        assert_eq!(in_flight.get(), 2);
        jobs.inc();
        let merged = MultiProcessCollector::new(&dir).unwrap().read().unwrap();
        assert!(merged.skipped.is_empty(), "{:?}", merged.skipped);
        let value = |name: &str| {
            merged
                .families
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.samples.clone())
                .unwrap()
        };
        let jobs_total: f64 = value("jobs")
            .iter()
            .map(|(_, v)| match v.as_ref() {
                crate::ValueRef::Counter(c) => c.value().as_f64(),
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(jobs_total, 7.0, "the parent's 6 and the child's 1");
        // The child has exited: its counter is folded into the archive, and its own series
        // of an `all` gauge leaves the view.
        assert!(dir.join("counter_archive.db").exists());
        let busy = value("busy");
        assert_eq!(busy.len(), 1, "the parent's series only: {busy:?}");
        assert_eq!(busy[0].0, [("pid".to_owned(), parent.clone())]);
        // The registry's scrape merges the directory too.
        assert_eq!(registry.get_sample_value("jobs_total", &[]), Some(7.0));
        // The process that serves the scrape is alive; a second registry shares its files.
        let again = Registry::multiprocess(&dir).unwrap();
        again.counter("jobs", "Jobs.").register().unwrap().inc();
        assert_eq!(registry.get_sample_value("jobs_total", &[]), Some(8.0));
        // A removed series recorded again goes on from its total in the file.
        let orders = registry
            .counter("orders", "Orders.")
            .label_names(["shop"])
            .register()
            .unwrap();
        orders.with_label_values(&["a"]).unwrap().inc_by(2);
        assert!(orders.remove(&[("shop", "a")]).unwrap());
        orders.with_label_values(&["a"]).unwrap().inc();
        assert_eq!(
            registry.get_sample_value("orders_total", &[("shop", "a")]),
            Some(3.0)
        );
        let elsewhere = Registry::multiprocess(dir.join("other")).unwrap_err();
        assert!(
            elsewhere.to_string().contains("already writes"),
            "{elsewhere}"
        );
    }
}
