//! Every supported field type, renames, generics and raw identifiers derive without a
//! warning, and give the names and values they say.
#![deny(warnings)]

use std::borrow::Cow;
use std::sync::Arc;

use vitals_core::{LabelSet, LabelValue, Registry};

#[derive(LabelValue, Clone, Copy)]
enum Tier {
    Free,
    #[label(value = "paid_annual")]
    PaidAnnual,
}

#[derive(LabelValue)]
enum Never {}

#[derive(LabelSet)]
struct Request<'a, T> {
    method: &'a str,
    route: String,
    status: u16,
    retried: bool,
    tier: Tier,
    #[label(name = "kind")]
    r#type: Cow<'a, str>,
    region: Arc<str>,
    shard: T,
}

/// A wrapper of one's own, made a label value by hand.
struct Zone(&'static str);

impl LabelValue for Zone {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        visit(self.0);
    }
}

#[derive(LabelSet)]
struct Placement {
    zone: Zone,
    rack: Box<str>,
}

fn values<L: LabelSet>(labels: &L) -> Vec<String> {
    let mut out = Vec::new();
    labels.visit_values(&mut |v| out.push(v.to_owned()));
    out
}

fn main() -> Result<(), vitals_core::Error> {
    let request = Request {
        method: "GET",
        route: "/users/{id}".to_owned(),
        status: 404,
        retried: false,
        tier: Tier::PaidAnnual,
        r#type: Cow::Borrowed("api"),
        region: Arc::from("eu"),
        shard: -3_i64,
    };
    assert_eq!(
        Request::<i64>::NAMES,
        ["method", "route", "status", "retried", "tier", "kind", "region", "shard"]
    );
    assert_eq!(
        values(&request),
        ["GET", "/users/{id}", "404", "false", "paid_annual", "api", "eu", "-3"]
    );
    let _ = Tier::Free;
    let _: Option<Never> = None;

    let registry = Registry::new();
    let placements = registry
        .gauge("placements", "Placed replicas.")
        .typed_labels::<Placement>()
        .register()?;
    placements
        .get(&Placement {
            zone: Zone("a"),
            rack: "r1".into(),
        })
        .set(2);
    let labels = [("rack", "r1"), ("zone", "a")];
    assert_eq!(registry.get_sample_value("placements", &labels), Some(2.0));
    Ok(())
}
