//! A Pushgateway client for batch jobs, behind the `push` feature: push (replace a group),
//! push-add (replace metrics of the same names) and delete.

use hyper::Method;

use crate::encoding::text;
use crate::export::client::HttpTarget;
pub use crate::export::client::{PushError, Retry};
use crate::Registry;

/// A Pushgateway, for metrics of jobs that end before a scrape would see them.
///
/// Pushes send the whole registry in the Prometheus text format. A group is the job name plus
/// the grouping labels; values that cannot stand in a URL path as they are (a `/`, an empty
/// value, spaces, non-ASCII) are sent base64-encoded, as the Pushgateway expects.
///
/// ```no_run
/// use vitals_core::{push::Pushgateway, Registry};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new();
/// let rows = registry.counter("rows_processed", "Rows processed.").register()?;
/// rows.inc_by(1_000);
///
/// let gateway = Pushgateway::new("http://127.0.0.1:9091")?;
/// gateway.push(&registry, "nightly_import", &[("shard", "eu-1")]).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Pushgateway {
    target: HttpTarget,
}

impl Pushgateway {
    /// A gateway at `url` (`http[s]://host[:port]`, optionally with a base path and a query).
    ///
    /// # Errors
    ///
    /// [`PushError::InvalidUrl`] when the URL would not give a correct request (user info, a
    /// fragment, a bad port, spaces); [`PushError::Tls`] for `https://` without the `tls`
    /// feature.
    pub fn new(url: &str) -> Result<Self, PushError> {
        Ok(Self {
            target: HttpTarget::new(url)?,
        })
    }

    crate::export::client::target_options!();

    /// Replaces every metric of the group with the registry's (HTTP `PUT`).
    ///
    /// # Errors
    ///
    /// Any [`PushError`]; the gateway's own answer is in [`PushError::Rejected`].
    pub async fn push(
        &self,
        registry: &Registry,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<(), PushError> {
        let body = text::encode(registry);
        self.send(Method::PUT, job, grouping, body).await
    }

    /// Replaces the group's metrics that have the same names as the registry's, and keeps the
    /// others (HTTP `POST`).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub async fn push_add(
        &self,
        registry: &Registry,
        job: &str,
        grouping: &[(&str, &str)],
    ) -> Result<(), PushError> {
        let body = text::encode(registry);
        self.send(Method::POST, job, grouping, body).await
    }

    /// Deletes every metric of the group (HTTP `DELETE`).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub async fn delete(&self, job: &str, grouping: &[(&str, &str)]) -> Result<(), PushError> {
        self.send(Method::DELETE, job, grouping, String::new())
            .await
    }

    /// The path of a group: `/metrics/job/<job>{/<label>/<value>}`.
    fn group_path(&self, job: &str, grouping: &[(&str, &str)]) -> Result<String, PushError> {
        if job.is_empty() {
            return Err(PushError::InvalidGrouping {
                reason: "the job name is empty".to_owned(),
            });
        }
        let mut path = String::from("/metrics");
        push_segment(&mut path, "job", job);
        for &(name, value) in grouping {
            crate::validate::label_name(name, crate::MetricKind::Unknown).map_err(|e| {
                PushError::InvalidGrouping {
                    reason: e.to_string(),
                }
            })?;
            if name == "job" {
                return Err(PushError::InvalidGrouping {
                    reason: "`job` is given by the job name".to_owned(),
                });
            }
            push_segment(&mut path, name, value);
        }
        Ok(path)
    }

    async fn send(
        &self,
        method: Method,
        job: &str,
        grouping: &[(&str, &str)],
        body: String,
    ) -> Result<(), PushError> {
        let path = self.group_path(job, grouping)?;
        self.target
            .send(method, &path, text::CONTENT_TYPE, body.into_bytes())
            .await
            .map(drop)
    }
}

/// Appends `/<name>/<value>`, or `/<name>@base64/<value>` when the value cannot stand in a
/// path as it is.
fn push_segment(path: &mut String, name: &str, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'~'));
    path.push('/');
    path.push_str(name);
    if plain {
        path.push('/');
        path.push_str(value);
    } else if value.is_empty() {
        // The Pushgateway needs one `=` for an empty value.
        path.push_str("@base64/=");
    } else {
        path.push_str("@base64/");
        path.push_str(&crate::util::base64::encode(
            value.as_bytes(),
            crate::util::base64::URL_SAFE,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_values_that_cannot_stand_in_a_path_are_base64_encoded() {
        let g = Pushgateway::new("http://127.0.0.1:9091").unwrap();
        let path = g
            .group_path(
                "nightly",
                &[("shard", "eu-1"), ("dir", "/var/tmp"), ("empty", "")],
            )
            .unwrap();
        assert_eq!(
            path,
            "/metrics/job/nightly/shard/eu-1/dir@base64/L3Zhci90bXA=/empty@base64/="
        );
        assert!(g.group_path("", &[]).is_err());
        assert!(g.group_path("j", &[("bad-name", "x")]).is_err());
        assert!(g.group_path("j", &[("job", "x")]).is_err());
    }
}
