//! The only `unsafe` in vitals: files mapped into memory, the atomic cells inside them, the
//! advisory locks that say a process is alive, and the fork handler that gives a child its own
//! files.
//!
//! # Why the references are `'static`
//!
//! A file's mapping is reserved once at its largest size ([`RESERVED`]) and never unmapped or
//! moved: the file grows under it (`ftruncate`) and a forked child swaps the file under it
//! (`MAP_FIXED` at the same address, same length). So a cell handed out once stays valid
//! memory for the rest of the process's life, whatever happens to the [`MappedFile`] value.
//! The price is address space: [`RESERVED`] bytes per file, of which only the pages written
//! become memory.
//!
//! # Who writes what
//!
//! Only the process that created a file writes into it, and, inside it, only two things: new
//! entries, appended past the bytes in use under the caller's lock ([`MappedFile::append`]),
//! then published by a release store of the new length into the header; and the values of
//! entries already published, through [`Cell`]'s atomics. Other processes read the file with
//! `read(2)`, never through a mapping of their own, so nothing outside this process holds a
//! reference into this memory.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The most bytes one file may hold: the address space reserved for it. 64 MiB is about
/// 300,000 series with 200-byte keys; past it, new series of that file stay in memory only
/// (counted as errors of the multi-process collector).
pub(crate) const RESERVED: usize = if cfg!(target_pointer_width = "64") {
    64 << 20
} else {
    4 << 20
};

/// The size of a new file; it doubles as entries are added, up to [`RESERVED`].
const INITIAL: usize = 64 << 10;

/// A file of entries mapped into this process's memory.
#[derive(Debug)]
pub(crate) struct MappedFile {
    base: NonNull<u8>,
    file: File,
    /// The file's length; `base..base + len` is backed by the file.
    len: usize,
    /// The bytes in use, as the header says.
    used: usize,
}

// SAFETY: `MappedFile` is a pointer to a shared mapping plus a file; nothing about it is tied
// to the thread that made it. Mutation goes through `&mut self` (appends) or atomics (cells).
unsafe impl Send for MappedFile {}

impl MappedFile {
    /// Maps `file`, a new empty file, and writes its header (8 bytes in use).
    pub(crate) fn new(file: File) -> io::Result<Self> {
        allocate(&file, INITIAL)?;
        // SAFETY: a fresh mapping at an address of the kernel's choosing, over a file opened
        // for reading and writing; it aliases no Rust object. The range past the file's end
        // is only reserved: nothing here touches it before the file is grown over it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RESERVED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let mapped = Self {
            base,
            file,
            len: INITIAL,
            used: 8,
        };
        mapped.header().store(8, Ordering::Release);
        Ok(mapped)
    }

    /// The header's count of bytes in use.
    fn header(&self) -> &AtomicU32 {
        // SAFETY: the first 8 bytes are inside the file (its length is at least `INITIAL`),
        // page-aligned, and only ever accessed atomically in this process.
        unsafe { &*self.base.as_ptr().cast::<AtomicU32>() }
    }

    /// The bytes in use.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Appends an entry's bytes (a multiple of 8 long, values zero) and publishes it; returns
    /// its offset. Grows the file as needed, up to [`RESERVED`].
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() % 8 != 0 {
            return Err(io::Error::other(
                "an entry must be a multiple of 8 bytes long",
            ));
        }
        let at = self.used;
        let end = at
            .checked_add(bytes.len())
            .filter(|&end| end <= RESERVED && u32::try_from(end).is_ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("the file would pass its bound of {RESERVED} bytes"),
                )
            })?;
        if end > self.len {
            let len = self.len.saturating_mul(2).max(end).min(RESERVED);
            allocate(&self.file, len)?;
            self.len = len;
        }
        // SAFETY: `at..end` lies inside the file (just checked or grown) and inside the
        // reservation. It is past `used`, so no cell points into it and no reader in this
        // process looks at it; `&mut self` keeps other appends out.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(at), bytes.len());
        }
        self.used = end;
        // Release: a reader that sees the new length sees the entry's bytes.
        #[allow(clippy::cast_possible_truncation)] // `end` fits in u32, checked above
        self.header().store(end as u32, Ordering::Release);
        Ok(at)
    }

    /// The value and timestamp of the entry whose value is at `offset`.
    pub(crate) fn cell(&self, offset: usize) -> Option<Cell> {
        if offset % 8 != 0 || offset < 8 || offset.checked_add(16)? > self.used {
            return None;
        }
        // SAFETY: `offset..offset + 16` is 8-aligned (the mapping is page-aligned), inside
        // the bytes in use and so inside the file, and is only ever accessed atomically in
        // this process from now on. The mapping is never unmapped (see the module
        // documentation), so the reference may live as long as the process.
        let cells: &'static [AtomicU64; 2] =
            unsafe { &*self.base.as_ptr().add(offset).cast::<[AtomicU64; 2]>() };
        Some(Cell(cells))
    }

    /// Puts `file`, which must hold this file's bytes in use, under the same addresses, so
    /// that cells already handed out read and write it from now on. A forked child uses it to
    /// stop writing into its parent's file.
    pub(crate) fn swap_file(&mut self, file: File) -> io::Result<()> {
        allocate(&file, self.len)?;
        // SAFETY: replaces the pages of our own reservation, at its address and length, with
        // `file`'s (`MAP_FIXED`); the range stays mapped throughout, so every cell stays
        // valid memory. `file` covers `len`, which covers every cell.
        let base = unsafe {
            libc::mmap(
                self.base.as_ptr().cast(),
                RESERVED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.file = file;
        Ok(())
    }

    /// Puts private zeroed memory under the same addresses: the last resort of a forked
    /// child that could not make its own file, so that it still never writes into its
    /// parent's. The cells keep working; their values reach no file.
    pub(crate) fn detach(&mut self) -> io::Result<()> {
        // SAFETY: as in `swap_file`, with anonymous memory, which is never past its end.
        let base = unsafe {
            libc::mmap(
                self.base.as_ptr().cast(),
                RESERVED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.len = RESERVED;
        Ok(())
    }
}

/// Makes `file` `len` bytes long with its blocks allocated, so that a full disk is an error
/// here rather than a `SIGBUS` when a page of the mapping is first written. (Where the
/// system has no `posix_fallocate`, the file is only extended.)
fn allocate(file: &File, len: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let size = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: `posix_fallocate` on a descriptor we own, with no pointers involved.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) };
        match rc {
            0 => Ok(()),
            // Not supported by the file system: extending is the best there is.
            libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len as u64),
            rc => Err(io::Error::from_raw_os_error(rc)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    file.set_len(len as u64)
}

/// An entry's value and timestamp in a mapped file, as `f64` bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell(&'static [AtomicU64; 2]);

impl Cell {
    /// Adds `v` to the value.
    #[inline]
    pub(crate) fn add(self, v: f64) {
        crate::util::atomic::add_f64(&self.0[0], v);
    }

    /// Sets the value.
    #[inline]
    pub(crate) fn set(self, v: f64) {
        self.0[0].store(v.to_bits(), Ordering::Relaxed);
    }

    /// Sets the value and its timestamp (seconds since the Unix epoch), for the `mostrecent`
    /// gauge modes. The two are separate stores: a reader may see the new value with the old
    /// timestamp, or the reverse, until the next read.
    #[inline]
    pub(crate) fn set_at(self, v: f64, timestamp: f64) {
        self.0[0].store(v.to_bits(), Ordering::Relaxed);
        self.0[1].store(timestamp.to_bits(), Ordering::Relaxed);
    }

    /// The value.
    #[inline]
    pub(crate) fn get(self) -> f64 {
        f64::from_bits(self.0[0].load(Ordering::Relaxed))
    }
}

/// Takes an exclusive or shared `flock` on `file` without waiting; `Ok(false)` when another
/// open file holds a conflicting one.
pub(crate) fn try_lock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: `flock` on a descriptor we own, with no pointers involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Waits up to `patience` for an exclusive or shared `flock` on `file` (released when `file`
/// is closed); `Ok(false)` if it is still held by then. Waiting without a bound could hang
/// on a lock that nobody releases: a forked child keeps the descriptors of its parent, and
/// with them a lock the parent held at the fork, for as long as it lives.
pub(crate) fn lock_within(
    file: &File,
    exclusive: bool,
    patience: std::time::Duration,
) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        if try_lock(file, exclusive)? {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(10));
    }
}

/// Runs `child` in the child of every later `fork`, in the thread that forked, before
/// `fork` returns; `prepare` before the fork and `parent` after it in the parent.
pub(crate) fn at_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: the handlers are plain functions that live as long as the program.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Runs `child` in a forked child process, which then exits at once with its result as the
/// status (0 for `true`); returns whether the child succeeded.
#[cfg(test)]
pub(crate) fn fork_and_wait(child: impl FnOnce() -> bool) -> io::Result<bool> {
    // SAFETY: the child runs only `child` (the tests keep it to atomics, files and the
    // store's fork handler, which the prepare handler made consistent) and leaves with
    // `_exit`, running no destructor or exit handler of the parent's state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: ends the child without unwinding into the parent's copy of the stack.
        unsafe { libc::_exit(i32::from(!ok)) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, writing its status into a local.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("vitals-mapped-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("counter_1.db");
        let _ = std::fs::remove_file(&path);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn appended_entries_and_cell_writes_reach_the_file() {
        let (path, file) = temp_file("append");
        let mut mapped = MappedFile::new(file).unwrap();
        assert!(mapped.cell(8).is_none(), "nothing is published yet");
        let mut entry = vec![0u8; 24];
        entry[..4].copy_from_slice(&4u32.to_ne_bytes());
        entry[4..8].copy_from_slice(b"abcd");
        let at = mapped.append(&entry).unwrap();
        assert_eq!(at, 8);
        let cell = mapped.cell(at + 8).unwrap();
        cell.add(1.5);
        cell.add(2.0);
        cell.set_at(cell.get(), 7.0);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_ne_bytes(bytes[..4].try_into().unwrap()), 32);
        assert_eq!(&bytes[12..16], b"abcd");
        assert_eq!(f64::from_ne_bytes(bytes[16..24].try_into().unwrap()), 3.5);
        assert_eq!(f64::from_ne_bytes(bytes[24..32].try_into().unwrap()), 7.0);
        assert!(mapped.cell(at + 12).is_none(), "misaligned");
        assert!(mapped.cell(at + 16).is_none(), "past the bytes in use");
        assert!(mapped.append(&[0; 3]).is_err());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_file_grows_under_cells_already_handed_out() {
        let (path, file) = temp_file("grow");
        let mut mapped = MappedFile::new(file).unwrap();
        let entry = vec![0u8; 1024];
        let at = mapped.append(&entry).unwrap();
        let first = mapped.cell(at + 8).unwrap();
        for _ in 0..(4 * INITIAL / entry.len()) {
            mapped.append(&entry).unwrap();
        }
        first.add(1.0);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() >= 4 * INITIAL, "{}", bytes.len());
        assert_eq!(f64::from_ne_bytes(bytes[16..24].try_into().unwrap()), 1.0);
        // Past the bound: an error, and the file keeps what it had.
        let huge = vec![0u8; RESERVED];
        assert_eq!(
            mapped.append(&huge).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        assert_eq!(first.get(), 1.0);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_swapped_file_takes_the_writes_and_the_old_one_keeps_its_values() {
        let (path, file) = temp_file("swap");
        let mut mapped = MappedFile::new(file).unwrap();
        let at = mapped.append(&[0u8; 24]).unwrap();
        let cell = mapped.cell(at + 8).unwrap();
        cell.add(5.0);
        let other = path.with_file_name("counter_2.db");
        let _ = std::fs::remove_file(&other);
        let new = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&other)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&new, &[0u8; 32], 0).unwrap();
        mapped.swap_file(new).unwrap();
        assert_eq!(cell.get(), 0.0, "the new file's value");
        cell.add(1.0);
        let old = std::fs::read(&path).unwrap();
        let new = std::fs::read(&other).unwrap();
        assert_eq!(f64::from_ne_bytes(old[16..24].try_into().unwrap()), 5.0);
        assert_eq!(f64::from_ne_bytes(new[16..24].try_into().unwrap()), 1.0);
        mapped.detach().unwrap();
        cell.add(1.0);
        assert_eq!(cell.get(), 1.0, "private memory, zeroed");
        let new = std::fs::read(&other).unwrap();
        assert_eq!(f64::from_ne_bytes(new[16..24].try_into().unwrap()), 1.0);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_held_lock_is_seen_from_another_open_file() {
        let (path, file) = temp_file("lock");
        assert!(try_lock(&file, true).unwrap());
        let other = File::open(&path).unwrap();
        assert!(!try_lock(&other, false).unwrap(), "held by `file`");
        drop(file);
        assert!(try_lock(&other, false).unwrap(), "released when closed");
        let third = File::open(&path).unwrap();
        assert!(!lock_within(&third, true, std::time::Duration::from_millis(20)).unwrap());
        drop(other);
        assert!(lock_within(&third, true, std::time::Duration::from_millis(20)).unwrap());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
