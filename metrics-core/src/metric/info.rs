//! Info metrics: one constant series whose labels carry facts, such as `build_info`.

use crate::kind::MetricKind;
use crate::metric::{sealed::Sealed, Metric, Scratch, ValueRef};

/// The series of an info metric. Its value is always 1; its labels are the information.
///
/// Exposed as `<name>_info`, a gauge in the Prometheus text format and an `info` family in
/// OpenMetrics.
///
/// ```
/// let registry = vitals_core::Registry::new();
/// registry
///     .info("build", "Build information.")
///     .register(&[("version", env!("CARGO_PKG_VERSION")), ("profile", "release")])?;
/// let value = registry.get_sample_value(
///     "build_info",
///     &[("version", env!("CARGO_PKG_VERSION")), ("profile", "release")],
/// );
/// assert_eq!(value, Some(1.0));
/// # Ok::<(), vitals_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Info;

impl Metric for Info {}

impl Sealed for Info {
    type Config = ();
    const KIND: MetricKind = MetricKind::Info;

    fn create((): &()) -> Self {
        Self
    }

    fn reset(&self, (): &()) {}

    fn read<'a>(&'a self, (): &'a (), _: &'a mut Scratch) -> ValueRef<'a> {
        ValueRef::Info
    }
}
