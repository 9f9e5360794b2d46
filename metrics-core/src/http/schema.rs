//! The two naming presets: which families the recorder registers, with which labels.

use crate::error::Error;
use crate::family::Family;
use crate::metric::Buckets;
use crate::registry::Registry;

use super::in_flight::InFlight;
use super::sharded::{IntegerBuckets, ShardedCounter, ShardedHistogram, NANOS_PER_SECOND};

/// Which names and labels the HTTP metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Naming {
    /// `http_requests_total{method,route,status}`,
    /// `http_request_duration_seconds{method,route,status}`,
    /// `http_requests_in_flight{method,route}`, and the opt-in
    /// `http_request_size_bytes{method,route}` and `http_response_size_bytes{method,route}`.
    #[default]
    Prometheus,
    /// OpenTelemetry's semantic conventions:
    /// `http_server_request_duration_seconds{http_request_method,http_route,http_response_status_code,error_type}`
    /// (its `_count` is the request rate), `http_server_active_requests{http_request_method,http_route}`,
    /// and the opt-in `http_server_request_body_size_bytes` and
    /// `http_server_response_body_size_bytes`. `error_type` is the status code for 5xx,
    /// `cancelled` for [`STATUS_CLIENT_CLOSED`](crate::http::STATUS_CLIENT_CLOSED), and empty otherwise (4xx are not server errors).
    OpenTelemetry,
}

/// One family of the recorder under a preset: its name (before the unit and `_total`
/// suffixes), help and labels.
#[derive(Debug)]
pub(crate) struct FamilySpec {
    pub(crate) name: &'static str,
    pub(super) help: &'static str,
    pub(crate) labels: &'static [&'static str],
}

/// Every family a preset registers. The request counter is absent where the duration
/// histogram's `_count` is the request rate (OpenTelemetry).
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) requests: Option<FamilySpec>,
    pub(crate) in_flight: FamilySpec,
    pub(crate) duration: FamilySpec,
    pub(super) request_size: FamilySpec,
    pub(super) response_size: FamilySpec,
}

const PROMETHEUS: Schema = Schema {
    requests: Some(FamilySpec {
        name: "http_requests",
        help: "HTTP requests served.",
        labels: &["method", "route", "status"],
    }),
    in_flight: FamilySpec {
        name: "http_requests_in_flight",
        help: "HTTP requests being served.",
        labels: &["method", "route"],
    },
    duration: FamilySpec {
        name: "http_request_duration",
        help: "Time to serve HTTP requests, until the response body ended.",
        labels: &["method", "route", "status"],
    },
    request_size: FamilySpec {
        name: "http_request_size",
        help: "Sizes of HTTP request bodies.",
        labels: &["method", "route"],
    },
    response_size: FamilySpec {
        name: "http_response_size",
        help: "Sizes of HTTP response bodies.",
        labels: &["method", "route"],
    },
};

const OPENTELEMETRY: Schema = Schema {
    requests: None,
    in_flight: FamilySpec {
        name: "http_server_active_requests",
        help: "Number of active HTTP server requests.",
        labels: &["http_request_method", "http_route"],
    },
    duration: FamilySpec {
        name: "http_server_request_duration",
        help: "Duration of HTTP server requests.",
        labels: &[
            "http_request_method",
            "http_route",
            "http_response_status_code",
            "error_type",
        ],
    },
    request_size: FamilySpec {
        name: "http_server_request_body_size",
        help: "Size of HTTP server request bodies.",
        labels: &["http_request_method", "http_route"],
    },
    response_size: FamilySpec {
        name: "http_server_response_body_size",
        help: "Size of HTTP server response bodies.",
        labels: &["http_request_method", "http_route"],
    },
};

impl Naming {
    pub(crate) fn schema(self) -> &'static Schema {
        match self {
            Self::Prometheus => &PROMETHEUS,
            Self::OpenTelemetry => &OPENTELEMETRY,
        }
    }
}

/// The families a recorder records into, registered from a [`Schema`].
#[derive(Debug, Clone)]
pub(super) struct Families {
    pub(super) requests: Option<Family<ShardedCounter>>,
    pub(super) duration: Family<ShardedHistogram>,
    pub(super) in_flight: Family<InFlight>,
    pub(super) request_size: Option<Family<ShardedHistogram>>,
    pub(super) response_size: Option<Family<ShardedHistogram>>,
}

impl Schema {
    /// Registers the families, in exposition order, or finds those registered before with the
    /// same options.
    pub(super) fn register(
        &self,
        registry: &Registry,
        buckets: &Buckets,
        body_sizes: bool,
        cap: Option<usize>,
    ) -> Result<Families, Error> {
        let family = |spec: &FamilySpec| (spec.name, spec.help, spec.labels.iter().copied());
        let requests = match &self.requests {
            Some(spec) => {
                let (name, help, labels) = family(spec);
                let builder = registry
                    .internal::<ShardedCounter>(name, help, ())
                    .label_names(labels);
                Some(capped(builder, cap).register()?)
            }
            None => None,
        };
        let (name, help, labels) = family(&self.in_flight);
        let in_flight = capped(
            registry
                .internal::<InFlight>(name, help, ())
                .label_names(labels),
            cap,
        )
        .register()?;
        let (name, help, labels) = family(&self.duration);
        let duration = registry
            .internal::<ShardedHistogram>(
                name,
                help,
                IntegerBuckets {
                    buckets: buckets.clone(),
                    units: NANOS_PER_SECOND,
                },
            )
            .unit("seconds")
            .label_names(labels);
        let duration = capped(duration, cap).register()?;
        let size = |spec: &FamilySpec| -> Result<Family<ShardedHistogram>, Error> {
            let (name, help, labels) = family(spec);
            let builder = registry
                .internal::<ShardedHistogram>(
                    name,
                    help,
                    IntegerBuckets {
                        buckets: Buckets::exponential(64.0, 4.0, 10)?,
                        units: 1,
                    },
                )
                .unit("bytes")
                .label_names(labels);
            capped(builder, cap).register()
        };
        let (request_size, response_size) = if body_sizes {
            (
                Some(size(&self.request_size)?),
                Some(size(&self.response_size)?),
            )
        } else {
            (None, None)
        };
        Ok(Families {
            requests,
            duration,
            in_flight,
            request_size,
            response_size,
        })
    }
}

fn capped<M: crate::Metric>(
    builder: crate::FamilyBuilder<'_, M>,
    cap: Option<usize>,
) -> crate::FamilyBuilder<'_, M> {
    match cap {
        Some(cap) => builder.series_cap(cap),
        None => builder,
    }
}
