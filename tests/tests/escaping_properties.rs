//! Property test: any label value (quotes, backslashes, newlines, carriage returns, NUL, line
//! and paragraph separators, any Unicode) written in the three text formats is read back
//! unchanged by independent parsers (Python's `prometheus_client` for text and OpenMetrics,
//! Python's `json` for JSON), and the text format passes `promtool check metrics`.
//!
//! Each case encodes a registry of many values at once, so that the real parsers run a few
//! times rather than once per value.

use std::collections::BTreeSet;

use proptest::prelude::*;
use vitals_core::encoding::{json, openmetrics, text};
use vitals_core::Registry;
use vitals_tests::{
    promtool_check_metrics, python_parse_json, python_parse_openmetrics, python_parse_text,
};

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        // The characters escaping is about, in any mix.
        prop::collection::vec(
            prop::sample::select(vec![
                '\\', '"', '\n', '\r', '\t', '\0', '\u{2028}', '\u{2029}', '{', '}', '=', ',', ' ',
                'a', 'é', '😀'
            ]),
            0..12
        )
        .prop_map(|chars| chars.into_iter().collect()),
        // A trailing backslash.
        "[a-z]{0,6}\\\\",
        // Anything.
        ".{0,16}",
    ]
}

fn values_read(samples: &[vitals_tests::ParsedSample]) -> BTreeSet<String> {
    samples
        .iter()
        .filter(|s| s.name == "escapes_total")
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == "v")
                .map(|(_, v)| v.clone())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn label_values_round_trip_through_every_text_format(
        values in prop::collection::btree_set(label_value(), 1..40),
    ) {
        let registry = Registry::new();
        let family = registry
            .counter("escapes", "Help with \\ backslash and\nnewline.")
            .label_names(["v"])
            .register()
            .unwrap();
        for value in &values {
            family.with_label_values(&[value.as_str()]).unwrap().inc();
        }
        let exposition = text::encode(&registry);
        prop_assert_eq!(&values_read(&python_parse_text(&exposition)), &values);
        prop_assert_eq!(promtool_check_metrics(&exposition), Ok(()));
        let om = openmetrics::encode(&registry);
        prop_assert_eq!(&values_read(&python_parse_openmetrics(&om)), &values);
        let document = json::encode(&registry);
        prop_assert_eq!(&values_read(&python_parse_json(&document)), &values);
    }
}
