//! Registration: checking a family's schema against what its name already holds.

use std::sync::{Arc, PoisonError};

use crate::error::Error;
use crate::family::{Descriptor, ErasedFamily, FamilyCore};
use crate::kind::MetricKind;
use crate::metric::Metric;
use crate::validate;

use super::{Group, Registry, COLLECTOR_ERRORS_METRIC, OVERFLOW_METRIC};

impl Registry {
    /// Registers a family, or returns the one already registered with this schema.
    pub(super) fn register_core<M: Metric>(
        &self,
        spec: Spec,
        config: M::Config,
        cap: usize,
    ) -> Result<Arc<FamilyCore<M>>, Error> {
        let kind = M::KIND;
        #[cfg(all(feature = "multiprocess", unix))]
        let gauge_mode = spec.gauge_mode;
        let desc = self.describe(spec, kind)?;
        let new_core = |desc, config| {
            #[allow(unused_mut)]
            let mut core = FamilyCore::<M>::new(desc, config, cap);
            #[cfg(all(feature = "multiprocess", unix))]
            if let (
                Some(mp),
                MetricKind::Counter
                | MetricKind::Gauge
                | MetricKind::Histogram
                | MetricKind::Summary,
            ) = (&self.store.multiprocess, kind)
            {
                core.files = Some(crate::multiprocess::FamilyFiles {
                    store: mp.store,
                    mode: gauge_mode,
                });
            }
            Arc::new(core)
        };
        let mut metrics = self
            .store
            .metrics
            .write()
            .unwrap_or_else(PoisonError::into_inner);

        if let Some(&index) = metrics.claimed.get(&*desc.name) {
            let Some(group) = metrics.groups.get_mut(index) else {
                return Err(Error::conflict(
                    &desc.name,
                    "the name is reserved by vitals",
                ));
            };
            let existing = group.members[0].desc();
            if existing.name != desc.name {
                return Err(Error::conflict(
                    &desc.name,
                    format!("a sample of the family {:?} has this name", existing.name),
                ));
            }
            schema_difference(existing, group.members[0].config(), &desc, &config)
                .map_or(Ok(()), |reason| Err(Error::conflict(&desc.name, reason)))?;
            if let Some(member) = group
                .members
                .iter()
                .find(|m| m.desc().const_labels == desc.const_labels)
            {
                return Arc::clone(member)
                    .into_any()
                    .downcast::<FamilyCore<M>>()
                    .map_err(|_| Error::conflict(&desc.name, OTHER_VALUE_TYPE));
            }
            let core = new_core(desc, config);
            group
                .members
                .push(Arc::clone(&core) as Arc<dyn ErasedFamily>);
            return Ok(core);
        }

        let names = sample_names(&desc.name, kind);
        if let Some((taken, owner)) = names
            .iter()
            .find_map(|n| metrics.claimed.get(n).map(|&owner| (n, owner)))
        {
            let owner = metrics.groups.get(owner).map_or_else(
                || "vitals".to_owned(),
                |g| format!("{:?}", g.members[0].desc().name),
            );
            return Err(Error::conflict(
                &desc.name,
                format!("its sample name {taken:?} is already exposed by {owner}"),
            ));
        }
        let index = metrics.groups.len();
        let core = new_core(desc, config);
        metrics.groups.push(Group {
            members: vec![Arc::clone(&core) as Arc<dyn ErasedFamily>],
        });
        for name in names {
            metrics.claimed.insert(name, index);
        }
        Ok(core)
    }

    /// Validates a registration and builds its descriptor, with the view applied.
    pub(super) fn describe(&self, spec: Spec, kind: MetricKind) -> Result<Descriptor, Error> {
        validate::metric_name(&spec.name)?;
        let mut name = spec.name;
        let suffix = kind.name_suffix();
        if !suffix.is_empty() && name.len() > suffix.len() && name.ends_with(suffix) {
            name.truncate(name.len() - suffix.len());
        }
        if let Some(unit) = &spec.unit {
            validate::name_part(unit)?;
            if !name.ends_with(&format!("_{unit}")) {
                name = format!("{name}_{unit}");
            }
        }
        if let Some(prefix) = &self.view.prefix {
            name = format!("{prefix}_{name}");
        }
        validate::metric_name(&name)?;
        if name == OVERFLOW_METRIC || name == COLLECTOR_ERRORS_METRIC {
            return Err(Error::conflict(&name, "the name is reserved by vitals"));
        }
        validate::label_names(
            spec.labels
                .iter()
                .map(String::as_str)
                .chain(self.view.const_labels.iter().map(|(k, _)| &**k)),
            kind,
        )?;
        Ok(Descriptor {
            name: name.into(),
            help: spec.help.into(),
            unit: spec.unit.map(Into::into),
            kind,
            label_names: spec.labels.into_iter().map(Into::into).collect(),
            const_labels: self.view.const_labels.clone(),
        })
    }
}

/// Why a family of another metric type cannot be returned under the same name and kind.
const OTHER_VALUE_TYPE: &str = "it is registered with another value type (integer or float), or \
                                by vitals' HTTP recorder, whose series are types of its own";

/// What a builder hands to registration.
pub(super) struct Spec {
    pub(super) name: String,
    pub(super) help: String,
    pub(super) unit: Option<String>,
    pub(super) labels: Vec<String>,
    /// How a gauge's values from several processes merge, in multi-process mode.
    #[cfg(all(feature = "multiprocess", unix))]
    pub(super) gauge_mode: Option<crate::multiprocess::GaugeMode>,
}

/// Why two registrations under one name differ, if they do.
fn schema_difference<C: PartialEq + 'static>(
    existing: &Descriptor,
    existing_config: &dyn std::any::Any,
    new: &Descriptor,
    new_config: &C,
) -> Option<String> {
    if existing.kind != new.kind {
        return Some(format!(
            "it is registered as a {}, not a {}",
            existing.kind.prometheus_name(),
            new.kind.prometheus_name()
        ));
    }
    if existing.label_names != new.label_names {
        return Some(format!(
            "it is registered with labels {:?}, not {:?}",
            existing.label_names, new.label_names
        ));
    }
    if existing.help != new.help {
        return Some(format!(
            "it is registered with help {:?}, not {:?}",
            existing.help, new.help
        ));
    }
    if existing.unit != new.unit {
        return Some(format!(
            "it is registered with unit {:?}, not {:?}",
            existing.unit, new.unit
        ));
    }
    match existing_config.downcast_ref::<C>() {
        None => return Some(OTHER_VALUE_TYPE.to_owned()),
        Some(existing) if existing != new_config => {
            return Some("it is registered with other buckets or quantiles".to_owned());
        }
        Some(_) => {}
    }
    None
}

/// The sample names a family of this kind exposes, and the family name itself.
pub(super) fn sample_names(name: &str, kind: MetricKind) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        MetricKind::Counter => &["", "_total", "_created"],
        MetricKind::Histogram => &["", "_bucket", "_sum", "_count", "_created"],
        MetricKind::Summary => &["", "_sum", "_count", "_created"],
        MetricKind::Info => &["", "_info"],
        MetricKind::Gauge | MetricKind::Unknown => &[""],
    };
    suffixes.iter().map(|s| format!("{name}{s}")).collect()
}
