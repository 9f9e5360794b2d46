//! Getting metrics out of the process: the live page that the adapters and the exporter
//! serve, and, without a web framework, a standalone `/metrics`
//! server, pushes to a Prometheus Pushgateway, and OTLP/HTTP export to an OpenTelemetry
//! collector, each behind its own feature.

#[cfg(any(feature = "push", feature = "otlp"))]
mod client;
pub mod grafana;
pub mod live;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "push")]
pub mod pushgateway;
#[cfg(feature = "exporter")]
pub mod server;
