//! [`OtlpExporter::from_env`]: the variables every OpenTelemetry SDK reads.

use std::time::Duration;

use super::{OtlpExporter, PushError, Retry};
use crate::Registry;

/// Where OTLP/HTTP collectors listen unless told otherwise.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

impl OtlpExporter {
    /// An exporter configured by the standard OpenTelemetry environment variables, for
    /// `registry`. Empty variables count as unset; a metrics-specific variable
    /// (`OTEL_EXPORTER_OTLP_METRICS_*`) wins over the general one.
    ///
    /// | Variable | Use |
    /// |---|---|
    /// | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | the full URL, used as it is |
    /// | `OTEL_EXPORTER_OTLP_ENDPOINT` | the base URL, `/v1/metrics` appended; default `http://localhost:4318` |
    /// | `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS` | `key=value,...`, values percent-decoded |
    /// | `OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT` | one attempt's timeout, in milliseconds; default 10000 |
    /// | `OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION` | `gzip` or `none` |
    /// | `OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL` | `http/protobuf`, the only one supported |
    /// | `OTEL_EXPORTER_OTLP_[METRICS_]CERTIFICATE` | a PEM file of roots to trust (`tls` feature) |
    /// | `OTEL_SERVICE_NAME` | `service.name`, over the one in the attributes |
    /// | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...`, values percent-decoded |
    /// | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between exports; default 60000 |
    /// | `OTEL_METRIC_EXPORT_TIMEOUT` | milliseconds one export may take with its retries; default 30000 |
    ///
    /// ```
    /// # let registry = vitals_core::Registry::new();
    /// // With none of the variables set: http://localhost:4318/v1/metrics, every 60 s.
    /// let exporter = vitals_core::otlp::OtlpExporter::from_env(&registry)?;
    /// # Ok::<(), vitals_core::otlp::PushError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidConfig`] naming the variable whose value cannot be used (a
    /// protocol other than `http/protobuf`, a timeout that is not a number, a header without
    /// `=`, an unreadable certificate file), or the error of the endpoint's URL.
    pub fn from_env(registry: &Registry) -> Result<Self, PushError> {
        Self::from_lookup(registry, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub(crate) fn from_lookup(
        registry: &Registry,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, PushError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // The metrics-specific variable, else the general one, with the name that was used.
        let either = |suffix: &str| {
            let specific = format!("OTEL_EXPORTER_OTLP_METRICS_{suffix}");
            let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
            var(&specific)
                .map(|v| (specific, v))
                .or_else(|| var(&general).map(|v| (general, v)))
        };
        if let Some((name, protocol)) = either("PROTOCOL") {
            if protocol.trim() != "http/protobuf" {
                return Err(invalid(
                    &name,
                    format!("{protocol:?}: only http/protobuf is supported"),
                ));
            }
        }
        let mut exporter = match var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
            Some(url) => {
                let mut exporter = Self::new(registry, url.trim())?;
                exporter.path = String::new();
                exporter
            }
            None => Self::new(
                registry,
                var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .as_deref()
                    .map_or(DEFAULT_ENDPOINT, str::trim),
            )?,
        };
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        ] {
            if let Some(headers) = var(name) {
                for (key, value) in pairs(name, &headers)? {
                    exporter = exporter.header(key, value)?;
                }
            }
        }
        if let Some((name, ms)) = either("TIMEOUT") {
            exporter.target.timeout = millis(&name, &ms)?;
        }
        if let Some((name, compression)) = either("COMPRESSION") {
            exporter.target.gzip = match compression.trim() {
                "gzip" => true,
                "none" => false,
                other => return Err(invalid(&name, format!("{other:?}: gzip or none"))),
            };
        }
        if let Some((name, path)) = either("CERTIFICATE") {
            exporter = exporter.certificate_file(&name, path.trim())?;
        }
        if let Some(attributes) = var("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in pairs("OTEL_RESOURCE_ATTRIBUTES", &attributes)? {
                exporter = if key == "service.name" {
                    exporter.service_name(value)
                } else {
                    exporter.resource_attribute(key, value)
                };
            }
        }
        if let Some(service) = var("OTEL_SERVICE_NAME") {
            exporter = exporter.service_name(service.trim());
        }
        if let Some(ms) = var("OTEL_METRIC_EXPORT_INTERVAL") {
            exporter = exporter.interval(millis("OTEL_METRIC_EXPORT_INTERVAL", &ms)?);
        }
        let budget = match var("OTEL_METRIC_EXPORT_TIMEOUT") {
            Some(ms) => millis("OTEL_METRIC_EXPORT_TIMEOUT", &ms)?,
            None => Duration::from_secs(30),
        };
        exporter.target.retry = Retry::default().max_elapsed(budget);
        Ok(exporter)
    }

    #[cfg(feature = "tls")]
    fn certificate_file(self, name: &str, path: &str) -> Result<Self, PushError> {
        let pem =
            std::fs::read(path).map_err(|e| invalid(name, format!("cannot read {path:?}: {e}")))?;
        self.root_certificates(&pem)
    }

    #[cfg(not(feature = "tls"))]
    fn certificate_file(self, name: &str, _path: &str) -> Result<Self, PushError> {
        Err(invalid(
            name,
            "certificates need vitals-core's `tls` feature".to_owned(),
        ))
    }
}

fn invalid(name: &str, reason: String) -> PushError {
    PushError::InvalidConfig {
        name: name.to_owned(),
        reason,
    }
}

fn millis(name: &str, value: &str) -> Result<Duration, PushError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| invalid(name, format!("{value:?} is not a number of milliseconds")))
}

/// `key=value,key=value`, keys trimmed, values trimmed and percent-decoded.
fn pairs(name: &str, list: &str) -> Result<Vec<(String, String)>, PushError> {
    list.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| invalid(name, format!("{item:?} is not key=value")))?;
            let value = percent_decode(value.trim())
                .ok_or_else(|| invalid(name, format!("{item:?} has a bad percent-encoding")))?;
            Ok((key.trim().to_owned(), value))
        })
        .collect()
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<OtlpExporter, PushError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtlpExporter::from_lookup(&Registry::new(), move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn without_variables_the_sdk_defaults_apply() {
        let e = from(&[]).unwrap();
        assert_eq!(e.target.request_target(&e.path), "/v1/metrics");
        assert_eq!(e.target.authority(), "localhost:4318");
        assert_eq!(e.interval, Duration::from_secs(60));
        assert_eq!(e.target.timeout, Duration::from_secs(10));
        assert!(!e.target.gzip);
    }

    #[test]
    fn every_variable_is_read_and_the_specific_one_wins() {
        let e = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://c:9000/custom/path?t=1",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=a%20b, x-tenant = blue",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,deployment.environment=prod",
            ),
            ("OTEL_SERVICE_NAME", "checkout"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "20000"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ""),
        ])
        .unwrap();
        assert_eq!(e.target.request_target(&e.path), "/custom/path?t=1");
        assert_eq!(e.target.authority(), "c:9000");
        assert_eq!(e.target.timeout, Duration::from_millis(2500));
        assert!(e.target.gzip);
        assert_eq!(e.interval, Duration::from_secs(15));
        assert_eq!(
            e.target.retry,
            Retry::default().max_elapsed(Duration::from_secs(20))
        );
        assert_eq!(
            e.resource[0],
            ("service.name".to_owned(), "checkout".to_owned())
        );
        assert!(e
            .resource
            .contains(&("deployment.environment".to_owned(), "prod".to_owned())));
        let headers = e.target.header_pairs();
        assert!(
            headers.contains(&("api-key".to_owned(), "a b".to_owned())),
            "{headers:?}"
        );
        assert!(headers.contains(&("x-tenant".to_owned(), "blue".to_owned())));
    }

    #[test]
    fn values_that_cannot_be_used_name_their_variable() {
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign"),
            ("OTEL_RESOURCE_ATTRIBUTES", "k=%zz"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "-1"),
        ] {
            let err = from(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
        assert!(matches!(
            from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]),
            Err(PushError::InvalidUrl { .. })
        ));
    }
}
