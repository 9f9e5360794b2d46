//! The Prometheus naming rules, checked once at registration.

use crate::error::Error;
use crate::kind::MetricKind;

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, and not starting with the reserved `__`.
pub(crate) fn metric_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidMetricName {
            name: name.to_owned(),
            reason,
        })
    };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return invalid("it is empty"),
        Some(b) if !(b.is_ascii_alphabetic() || b == b'_' || b == b':') => {
            return invalid("it must start with a letter, `_` or `:`")
        }
        Some(_) => {}
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        return invalid("it may only hold ASCII letters, digits, `_` and `:`");
    }
    if name.starts_with("__") {
        return invalid("names starting with `__` are reserved for Prometheus' own use");
    }
    Ok(())
}

/// A part of a metric name (namespace prefix, unit): like a metric name without `:`.
pub(crate) fn name_part(part: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidMetricName {
            name: part.to_owned(),
            reason,
        })
    };
    if part.is_empty() {
        return invalid("it is empty");
    }
    if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return invalid("a namespace or unit may only hold ASCII letters, digits and `_`");
    }
    Ok(())
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, and not the label a metric type reserves.
pub(crate) fn label_name(name: &str, kind: MetricKind) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidLabelName {
            name: name.to_owned(),
            reason,
        })
    };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return invalid("it is empty"),
        Some(b) if !(b.is_ascii_alphabetic() || b == b'_') => {
            return invalid("it must start with a letter or `_`")
        }
        Some(_) => {}
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return invalid("it may only hold ASCII letters, digits and `_`");
    }
    if name.starts_with("__") {
        return invalid("label names starting with `__` are reserved for Prometheus' own use");
    }
    match (kind, name) {
        (MetricKind::Histogram, "le") | (MetricKind::Summary, "quantile") => {
            Err(Error::reserved_label(name, kind))
        }
        _ => Ok(()),
    }
}

/// Checks a whole list of label names: each valid and none twice.
pub(crate) fn label_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    kind: MetricKind,
) -> Result<(), Error> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        label_name(name, kind)?;
        if seen.contains(&name) {
            return Err(Error::InvalidLabelName {
                name: name.to_owned(),
                reason: "it is given more than once",
            });
        }
        seen.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_prometheus_rules() {
        for good in ["a", "http_requests", "ns:rule:rate5m", "_x", "A9"] {
            assert_eq!(metric_name(good), Ok(()), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "__reserved", "a\n"] {
            let err = metric_name(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "error names the string: {err}"
            );
        }
    }

    #[test]
    fn label_names_follow_the_prometheus_rules_and_reserve_le_and_quantile() {
        assert_eq!(label_name("method", MetricKind::Counter), Ok(()));
        assert_eq!(label_name("le", MetricKind::Counter), Ok(()));
        assert!(label_name("le", MetricKind::Histogram).is_err());
        assert!(label_name("quantile", MetricKind::Summary).is_err());
        assert_eq!(label_name("quantile", MetricKind::Histogram), Ok(()));
        for bad in ["", "1x", "a:b", "__name__", "a-b"] {
            assert!(label_name(bad, MetricKind::Gauge).is_err(), "{bad}");
        }
        let err = label_names(["a", "b", "a"], MetricKind::Gauge).unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
    }
}
