//! Property tests of the parsers and validators that take outside input: route templating,
//! `Accept` and `Accept-Encoding` negotiation, metric and label names. Each property is
//! checked against a small model written here, or against invariants any input must keep.
//! (Label escaping is checked through the real parsers in the workspace's `tests` crate.)

use proptest::prelude::*;
use vitals_core::encoding::Format;
use vitals_core::http::accepts_gzip;
use vitals_core::route::{RouteTemplater, UNMATCHED_ROUTE};
use vitals_core::Registry;

/// Path segments of the kinds a service and a scanner send.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[0-9]{1,12}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[0-9a-f]{16,40}",
        "[A-Za-z0-9_-]{0,30}",
        ".{0,12}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(segment(), 0..8),
        prop::option::of("[a-z=&]{0,10}"),
    )
        .prop_map(|(segments, query)| {
            let mut path = format!("/{}", segments.join("/"));
            if let Some(query) = query {
                path.push('?');
                path.push_str(&query);
            }
            path
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn templates_never_carry_ids_and_patterns_always_win(paths in prop::collection::vec(path(), 1..40)) {
        let templater = RouteTemplater::new()
            .pattern("/users/{id}/orders/{order}").unwrap()
            .learned_templates(8);
        // An oracle that keeps every template: what each path would be without a cap.
        let oracle = RouteTemplater::new().learned_templates(4096);
        let mut asked = std::collections::HashMap::<String, usize>::new();
        let mut learned = std::collections::HashSet::new();
        for path in &paths {
            *asked.entry(oracle.template(path)).or_default() += 1;
            let template = templater.template(path);
            if template == UNMATCHED_ROUTE {
                continue;
            }
            prop_assert!(template.starts_with('/'), "{template}");
            prop_assert!(!template.contains('?'), "no query in {template}");
            for segment in template.split('/').skip(1) {
                prop_assert!(
                    segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()),
                    "a numeric id in {template} from {path}"
                );
            }
            if template != "/users/{id}/orders/{order}" {
                learned.insert(template);
            }
        }
        // The pattern matches whatever was learned before.
        prop_assert_eq!(templater.template("/users/7/orders/x1"), "/users/{id}/orders/{order}");
        // A template gets in by a free slot (8 of them) or by being asked for again: one-off
        // templates add no more than the cap.
        let repeated = asked.iter().filter(|(t, &n)| n >= 2 && *t != UNMATCHED_ROUTE).count();
        prop_assert!(learned.len() <= 8 + repeated, "{} learned, {repeated} repeated", learned.len());
    }

    #[test]
    fn templating_is_a_function_of_the_path_while_it_stays_learned(path in path()) {
        let templater = RouteTemplater::new();
        let first = templater.template(&path);
        prop_assert_eq!(templater.template(&path), first);
    }
}

/// A coding with an optional weight, as clients write them, odd spellings included.
fn coding() -> impl Strategy<Value = (String, Option<String>)> {
    (
        prop_oneof![
            Just("gzip".to_owned()),
            Just("GZIP".to_owned()),
            Just("x-gzip".to_owned()),
            Just("*".to_owned()),
            Just("br".to_owned()),
            Just("identity".to_owned()),
            Just("deflate".to_owned()),
        ],
        prop::option::of(prop_oneof![
            Just("0".to_owned()),
            Just("0.000".to_owned()),
            Just("0.5".to_owned()),
            Just("1".to_owned()),
            Just("1.0".to_owned()),
            Just("2".to_owned()),
            Just("oops".to_owned()),
        ]),
    )
}

/// The RFC 9110 reading, written independently: the highest weight among gzip's entries,
/// else `*`'s (the last one), and an unreadable or out-of-range weight refuses.
fn gzip_model(codings: &[(String, Option<String>)]) -> bool {
    let weight = |q: &Option<String>| match q.as_deref() {
        None => 1.0,
        Some(q) => q
            .parse::<f64>()
            .ok()
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(0.0),
    };
    let gzip = codings
        .iter()
        .filter(|(c, _)| c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip"))
        .map(|(_, q)| weight(q))
        .reduce(f64::max);
    let any = codings
        .iter()
        .rev()
        .find(|(c, _)| c == "*")
        .map(|(_, q)| weight(q));
    gzip.or(any).is_some_and(|w| w > 0.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn accept_encoding_follows_the_rfc(
        codings in prop::collection::vec(coding(), 0..6),
        upper_q in any::<bool>(),
        spaces in any::<bool>(),
    ) {
        let q = if upper_q { "Q" } else { "q" };
        let sep = if spaces { " ; " } else { ";" };
        let header = codings
            .iter()
            .map(|(c, w)| match w {
                Some(w) => format!("{c}{sep}{q}={w}"),
                None => c.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        prop_assert_eq!(accepts_gzip(Some(&header)), gzip_model(&codings), "{}", header);
    }

    #[test]
    fn any_accept_encoding_or_accept_header_is_answered_without_panicking(header in ".{0,200}") {
        let _ = accepts_gzip(Some(&header));
        let format = Format::from_accept(Some(&header));
        prop_assert!(matches!(format, Format::Text | Format::OpenMetrics | Format::Json));
    }

    #[test]
    fn the_highest_weighted_known_format_wins(
        om in prop::option::of(0u8..=10),
        json in prop::option::of(0u8..=10),
        text in prop::option::of(0u8..=10),
    ) {
        let mut ranges = Vec::new();
        let mut expected: Option<(u8, Format)> = None;
        for (weight, media, format) in [
            (om, "application/openmetrics-text;version=1.0.0", Format::OpenMetrics),
            (json, "application/json", Format::Json),
            (text, "text/plain;version=0.0.4", Format::Text),
        ] {
            let Some(weight) = weight else { continue };
            ranges.push(format!("{media};q={}", f64::from(weight) / 10.0));
            if weight > 0 && expected.is_none_or(|(w, _)| weight > w) {
                expected = Some((weight, format));
            }
        }
        let header = ranges.join(",");
        let expected = expected.map_or(Format::Text, |(_, f)| f);
        prop_assert_eq!(Format::from_accept(Some(&header)), expected, "{}", header);
    }
}

/// The Prometheus data model's rules, written independently of the crate's validator.
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with("__")
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn metric_names_are_accepted_exactly_when_the_data_model_allows_them(
        name in prop_oneof!["[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", ".{0,12}", "__[a-z]{0,4}"],
    ) {
        let registry = Registry::new();
        let result = registry.gauge(&name, "A gauge.").register();
        prop_assert_eq!(result.is_ok(), valid_metric_name(&name), "{:?}: {:?}", name, result.err());
    }

    #[test]
    fn label_names_are_accepted_exactly_when_the_data_model_allows_them(
        label in prop_oneof!["[a-zA-Z_][a-zA-Z0-9_]{0,12}", ".{0,12}", "__[a-z]{0,4}", "[a-z]+:[a-z]+"],
    ) {
        let registry = Registry::new();
        let result = registry.gauge("g", "A gauge.").label_names([label.as_str()]).register();
        prop_assert_eq!(result.is_ok(), valid_label_name(&label), "{:?}: {:?}", label, result.err());
    }
}
