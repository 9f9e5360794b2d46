//! The synchronisation that loom models check: loom's under `--cfg vitals_loom`, std's
//! otherwise.

#[cfg(vitals_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(vitals_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(vitals_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(vitals_loom))]
pub(crate) use std::sync::{Mutex, OnceLock};

/// `OnceLock` for loom models, which have none: a loom mutex around the value, leaked so that
/// readers can hold a reference (a few bytes per model run, in tests only). Like std's, its
/// `get` sees everything written before the value was set.
#[cfg(vitals_loom)]
pub(crate) struct OnceLock<T: 'static>(loom::sync::Mutex<Option<&'static T>>);

#[cfg(vitals_loom)]
impl<T: 'static> std::fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnceLock")
    }
}

#[cfg(vitals_loom)]
impl<T: 'static> OnceLock<T> {
    pub(crate) fn new() -> Self {
        Self(loom::sync::Mutex::new(None))
    }

    pub(crate) fn get(&self) -> Option<&T> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        let mut cell = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *cell.get_or_insert_with(|| Box::leak(Box::new(f())))
    }

    pub(crate) fn set(&self, value: T) -> Result<(), T> {
        let mut cell = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cell.is_some() {
            return Err(value);
        }
        *cell = Some(Box::leak(Box::new(value)));
        Ok(())
    }
}
