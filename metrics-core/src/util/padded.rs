//! Cache-line padding.

use std::ops::Deref;

/// Aligns a value to its own cache lines so that two hot series never share one (false
/// sharing between cores costs tens to hundreds of nanoseconds per write).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
