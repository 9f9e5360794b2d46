use super::*;
use crate::{Counter, Registry};

#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Post,
}

impl LabelSet for Method {
    const NAMES: &'static [&'static str] = &["method"];

    fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
        visit(match self {
            Method::Get => "GET",
            Method::Post => "POST",
        });
    }
}

impl DenseLabelSet for Method {
    const CARDINALITY: usize = 2;

    fn dense_index(&self) -> usize {
        *self as usize
    }
}

/// A label set whose dense index lies: lookups must still be right and must not panic.
struct Liar(&'static str);

impl LabelSet for Liar {
    const NAMES: &'static [&'static str] = &["method"];

    fn visit_values(&self, visit: &mut dyn FnMut(&str)) {
        visit(self.0);
    }
}

impl DenseLabelSet for Liar {
    const CARDINALITY: usize = 1;

    fn dense_index(&self) -> usize {
        usize::MAX
    }
}

#[test]
fn a_series_index_finds_the_same_series_and_its_labels_again() {
    let r = Registry::new();
    let family = r
        .gauge("in_flight", "h")
        .label_names(["method", "route"])
        .series_cap(1)
        .register()
        .unwrap();
    let users = family.index_of(&["GET", "/users/{id}"]).unwrap();
    family.series(users).inc();
    assert_eq!(
        family
            .with_label_values(&["GET", "/users/{id}"])
            .unwrap()
            .get(),
        1
    );
    assert_eq!(family.label_value(users, 0), Some("GET"));
    assert_eq!(family.label_value(users, 1), Some("/users/{id}"));
    assert_eq!(family.label_value(users, 2), None);
    // Past the cap: the overflow series, which has no label values of its own.
    let other = family.index_of(&["GET", "/other"]).unwrap();
    assert_ne!(other, users);
    assert_eq!(family.label_value(other, 1), None);
    family.series(other).add(3);
    assert_eq!(
        r.get_sample_value(
            "in_flight",
            &[("method", "__overflow__"), ("route", "__overflow__")]
        ),
        Some(3.0)
    );
    assert_eq!(family.overflowed(), 1);
}

#[test]
fn dense_typed_and_named_lookups_reach_the_same_series() {
    let r = Registry::new();
    let dense = r
        .counter("requests", "h")
        .typed_labels::<Method>()
        .register_dense()
        .unwrap();
    let typed = r
        .counter("requests", "h")
        .typed_labels::<Method>()
        .register()
        .unwrap();
    dense.get(&Method::Get).inc();
    dense.get(&Method::Get).inc();
    typed.get(&Method::Get).inc();
    dense
        .family()
        .with_labels(&[("method", "GET")])
        .unwrap()
        .inc();
    assert_eq!(dense.get(&Method::Get).get(), 4);
    assert_eq!(dense.get(&Method::Post).get(), 0);
    assert_eq!(typed.get(&Method::Get).get(), 4, "one series behind both");
    let liar = r
        .counter("requests", "h")
        .typed_labels::<Liar>()
        .register_dense()
        .unwrap();
    assert_eq!(
        liar.get(&Liar("GET")).get(),
        4,
        "an index out of range falls back to hashing"
    );
}

#[test]
fn a_removed_series_comes_back_from_zero_through_every_path() {
    let r = Registry::new();
    let dense = r
        .counter("requests", "h")
        .typed_labels::<Method>()
        .register_dense()
        .unwrap();
    let kept: Counter = dense.get(&Method::Post).clone();
    kept.inc_by(5);
    assert!(dense.remove(&Method::Post));
    assert!(!dense.remove(&Method::Post));
    assert_eq!(
        r.get_sample_value("requests_total", &[("method", "POST")]),
        None
    );
    assert_eq!(dense.get(&Method::Post).get(), 0, "back from zero");
    kept.inc();
    assert_eq!(
        r.get_sample_value("requests_total", &[("method", "POST")]),
        Some(1.0),
        "an old handle records into the revived series"
    );
    dense.family().clear();
    assert!(dense.family().is_empty());
    assert_eq!(dense.get(&Method::Post).get(), 0);
    assert_eq!(dense.family().len(), 1);
}

#[test]
fn many_labels_and_empty_values_are_stored_and_found_exactly() {
    let r = Registry::new()
        .with_const_labels(&[("env", "prod")])
        .unwrap();
    let names = ["a", "b", "c", "d", "e", "f"];
    let family = r.gauge("wide", "h").label_names(names).register().unwrap();
    let values = ["", "x", "", "long value with \"quotes\"", "é", ""];
    family.with_label_values(&values).unwrap().set(6);
    family
        .with_label_values(&["", "x", "", "long value with \"quotes\"", "é", "other"])
        .unwrap()
        .set(7);
    let pairs: Vec<(&str, &str)> = names.iter().copied().zip(values).rev().collect();
    assert_eq!(
        family.with_labels(&pairs).unwrap().get(),
        6,
        "found by name, in any order"
    );
    let mut with_const = pairs.clone();
    with_const.push(("env", "prod"));
    assert_eq!(r.get_sample_value("wide", &with_const), Some(6.0));
    assert_eq!(family.len(), 2);
    let text = crate::encoding::text::encode(&r);
    assert!(
            text.contains(
                "wide{a=\"\",b=\"x\",c=\"\",d=\"long value with \\\"quotes\\\"\",e=\"é\",f=\"\",env=\"prod\"} 6"
            ),
            "{text}"
        );
}

#[test]
fn churn_of_distinct_label_sets_is_bounded_and_loses_nothing() {
    let r = Registry::new();
    let family = r
        .counter("jobs", "h")
        .label_names(["job"])
        .series_cap(2)
        .register()
        .unwrap();
    let lifetime = 2 * 2 + 1024;
    for i in 0..lifetime + 100 {
        let job = format!("job-{i}");
        family.with_labels(&[("job", &job)]).unwrap().inc();
        family.remove(&[("job", &job)]).unwrap();
    }
    // Past the lifetime limit, new label sets are counted in the overflow series.
    assert_eq!(family.overflowed(), 100);
    assert_eq!(
        r.get_sample_value("jobs_total", &[("job", "__overflow__")]),
        Some(100.0)
    );
    // Label sets seen before still come back.
    family.with_labels(&[("job", "job-7")]).unwrap().inc();
    assert_eq!(
        r.get_sample_value("jobs_total", &[("job", "job-7")]),
        Some(1.0)
    );
}

#[test]
fn lookups_racing_removals_and_revivals_stay_consistent() {
    let r = Registry::new();
    let family = r
        .gauge("g", "h")
        .label_names(["k"])
        .series_cap(64)
        .register()
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..2 {
            let (family, stop) = (&family, &stop);
            scope.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    family
                        .with_label_values(&[&(i % 50).to_string()])
                        .unwrap()
                        .inc();
                    i += 1;
                }
            });
        }
        for i in 0..20_000 {
            family.remove(&[("k", &(i % 50).to_string())]).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Every key is a live series or not; the live count matches the exposition.
    let exposed = (0..50)
        .filter(|k| r.get_sample_value("g", &[("k", &k.to_string())]).is_some())
        .count();
    assert_eq!(exposed, family.len());
    assert!(family.len() <= 50);
    assert_eq!(family.overflowed(), 0);
}
