//! Functions instrumented through a renamed dependency (`observability` is vitals-core) and
//! through vitals-tower's re-export of vitals-core, with `#[instrumented(crate = ..)]`.

use observability::Registry;

/// The registry these functions record into.
pub static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::new);

/// Instrumented through the renamed dependency.
#[observability::instrumented(crate = observability, registry = REGISTRY)]
pub fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
    input.parse()
}

/// Instrumented through the adapter's re-export of the core crate.
#[vitals_tower::vitals_core::instrumented(crate = vitals_tower::vitals_core)]
pub async fn through_the_adapter(n: u32) -> u32 {
    n + 1
}

/// A type whose methods are instrumented by one attribute on the `impl` block.
#[derive(Debug, Default)]
pub struct Store;

#[observability::instrumented(crate = observability, registry = REGISTRY)]
impl Store {
    /// Inherits `crate` and `registry` from the `impl` block.
    pub fn get(&self, key: u32) -> Option<u32> {
        (key % 2 == 0).then_some(key)
    }
}

/// A job's outcome, a label value through the renamed dependency.
#[derive(Debug, Clone, Copy, observability::LabelValue)]
#[label(crate = observability)]
pub enum Outcome {
    /// Done.
    Done,
    /// Put back on the queue.
    #[label(value = "retried")]
    Retry,
}

/// Typed labels through the renamed dependency.
#[derive(Debug, observability::LabelSet)]
#[label(crate = observability)]
pub struct Job<'a> {
    /// The queue the job came from.
    pub queue: &'a str,
    /// How it ended.
    pub outcome: Outcome,
}
