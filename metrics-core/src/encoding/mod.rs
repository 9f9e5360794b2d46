//! Exposition formats: what a scrape of a [`Registry`](crate::Registry) returns.
//!
//! | format | module | content type |
//! |---|---|---|
//! | Prometheus text 0.0.4 | [`text`] | [`text::CONTENT_TYPE`] |
//! | OpenMetrics 1.0 text, with exemplars | [`openmetrics`] | [`openmetrics::CONTENT_TYPE`] |
//! | JSON | [`json`] | [`json::CONTENT_TYPE`] |
//!
//! [`Format::from_accept`] picks one from a request's `Accept` header, and
//! [`Format::encode`] writes it.

pub mod json;
pub mod openmetrics;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub mod text;

pub(crate) use crate::util::fmt::{write_escaped_label_value, write_f64};

pub(crate) fn write_number(out: &mut String, n: crate::metric::Number) {
    use crate::metric::Number;
    match n {
        Number::U64(v) => out.push_str(itoa::Buffer::new().format(v)),
        Number::I64(v) => out.push_str(itoa::Buffer::new().format(v)),
        Number::F64(v) => write_f64(out, v),
    }
}

/// An exposition format a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4: what every Prometheus-compatible scraper reads, and
    /// the answer when the client does not say.
    #[default]
    Text,
    /// OpenMetrics 1.0 text, with exemplars (and `_created` samples if asked, see
    /// [`openmetrics`]).
    OpenMetrics,
    /// The JSON export described in [`json`].
    Json,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => text::CONTENT_TYPE,
            Self::OpenMetrics => openmetrics::CONTENT_TYPE,
            Self::Json => json::CONTENT_TYPE,
        }
    }

    /// Encodes the whole registry in this format.
    #[must_use]
    pub fn encode(self, registry: &crate::Registry) -> String {
        let mut out = String::new();
        self.encode_into(registry, &mut out);
        out
    }

    /// Encodes the whole registry in this format, appending to `out`.
    pub fn encode_into(self, registry: &crate::Registry, out: &mut String) {
        self.encode_into_with(registry, openmetrics::EncodeOptions::default(), out);
    }

    /// Encodes the whole registry in this format, `options` applying to OpenMetrics.
    #[must_use]
    pub fn encode_with(
        self,
        registry: &crate::Registry,
        options: openmetrics::EncodeOptions,
    ) -> String {
        let mut out = String::new();
        self.encode_into_with(registry, options, &mut out);
        out
    }

    /// Encodes the whole registry in this format, appending to `out`, `options` applying to
    /// OpenMetrics.
    pub fn encode_into_with(
        self,
        registry: &crate::Registry,
        options: openmetrics::EncodeOptions,
        out: &mut String,
    ) {
        match self {
            Self::Text => text::encode_into(registry, out),
            Self::OpenMetrics => openmetrics::encode_into_with(registry, options, out),
            Self::Json => json::encode_into(registry, out),
        }
    }

    /// The format to answer a request with, from its `Accept` header.
    ///
    /// Media ranges are weighed by their `q` values (1 when absent; 0 refuses one); the
    /// highest wins, and the earlier one among equals. `application/openmetrics-text`
    /// (versions 1.0.0 and 0.0.1, or none) gives OpenMetrics, `application/json` JSON, and
    /// `text/plain`, `text/*` and `*/*` the Prometheus text format. A missing, malformed or
    /// unsatisfiable header gives the Prometheus text format: never an error.
    ///
    /// ```
    /// use vitals_core::encoding::Format;
    ///
    /// // What Prometheus sends when it prefers OpenMetrics.
    /// let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
    ///                   text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    /// assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::from_accept(Some("application/json")), Format::Json);
    /// assert_eq!(Format::from_accept(Some("text/html;q=oops")), Format::Text);
    /// assert_eq!(Format::from_accept(None), Format::Text);
    /// ```
    #[must_use]
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let mut best: Option<(f64, Self)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0;
            let mut version: Option<String> = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    // A q that does not parse or is out of range makes the range unusable.
                    "q" => {
                        q = value
                            .parse::<f64>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/openmetrics-text"
                    if matches!(version.as_deref(), None | Some("1.0.0" | "0.0.1")) =>
                {
                    Self::OpenMetrics
                }
                "application/json" => Self::Json,
                "text/plain" if matches!(version.as_deref(), None | Some("0.0.4")) => Self::Text,
                "text/*" | "*/*" => Self::Text,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Self::Text, |(_, format)| format)
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn the_highest_q_wins_and_the_first_among_equals() {
        let cases = [
            (
                "application/json;q=0.4, application/openmetrics-text;q=0.5",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;q=0.5, application/json;q=0.9",
                Format::Json,
            ),
            (
                "application/json, application/openmetrics-text",
                Format::Json,
            ),
            (
                "text/plain;version=0.0.4;q=1, application/openmetrics-text;q=0.9",
                Format::Text,
            ),
            (
                "APPLICATION/OPENMETRICS-TEXT; Version=\"1.0.0\"",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=0.0.1",
                Format::OpenMetrics,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::from_accept(Some(accept)), expected, "{accept}");
        }
    }

    #[test]
    fn unusable_ranges_are_skipped_and_the_fallback_is_text() {
        let cases = [
            "",
            ",,;;",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text;q=abc",
            "application/openmetrics-text;q=7",
            "application/openmetrics-text;version=9.9.9",
            "text/plain;version=1.0",
            "image/png",
            "\u{1F680}/\u{1F680};q=0.5",
        ];
        for accept in cases {
            assert_eq!(
                Format::from_accept(Some(accept)),
                Format::Text,
                "{accept:?}"
            );
        }
        assert_eq!(
            Format::from_accept(Some("application/json;q=0, */*;q=0.1")),
            Format::Text
        );
    }

    #[test]
    fn each_format_names_its_content_type() {
        assert!(Format::Text.content_type().contains("version=0.0.4"));
        assert!(Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text; version=1.0.0"));
        assert_eq!(Format::Json.content_type(), "application/json");
    }
}
