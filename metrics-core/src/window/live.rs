//! The data of the live page: the golden signals of the busiest routes and functions at each
//! slot of a span, as JSON.

use crate::util::fmt::{json_string, write_f64};

use super::signals::{groups, Group};
use super::stats::Span;
use super::store::State;

/// The most routes, and the most functions, the live data holds: the busiest of the span.
pub(crate) const MAX_GROUPS: usize = 12;

/// `{"step":1,"t":[..],"tracked":n,"untracked":n,"routes":[..],"functions":[..]}`: `t` holds
/// the end of each slot in Unix seconds, oldest first; each route (`method`, `route`) and
/// function (`function`, `module`) holds `rate`, `error_ratio`, `p50`, `p99` and `in_flight`,
/// one value per slot, `null` where there is none, and `total`: its requests in the span.
pub(super) fn json(state: &State, span: &Span, start_unix: f64) -> String {
    let ring = if span.coarse {
        &state.coarse
    } else {
        &state.fine
    };
    let mut out = String::with_capacity(4096);
    out.push_str("{\"step\":");
    write_f64(&mut out, ring.step.as_secs_f64());
    out.push_str(",\"t\":[");
    for (i, &slot) in span.slots.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_number(&mut out, Some(start_unix + ring.ends[slot]));
    }
    out.push_str("],\"tracked\":");
    out.push_str(itoa::Buffer::new().format(state.tracked_count()));
    out.push_str(",\"untracked\":");
    out.push_str(itoa::Buffer::new().format(state.untracked));
    for (key, functions, names) in [
        ("routes", false, ["method", "route"]),
        ("functions", true, ["function", "module"]),
    ] {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":[");
        let mut ranked: Vec<(u64, Group<'_>)> = groups(state, functions)
            .into_iter()
            .map(|g| (g.count(span), g))
            .collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.0));
        for (i, (total, group)) in ranked.into_iter().take(MAX_GROUPS).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            for (name, value) in names.iter().zip([&group.first, &group.second]) {
                json_string(&mut out, name, true);
                out.push(':');
                json_string(&mut out, value, true);
                out.push(',');
            }
            out.push_str("\"total\":");
            out.push_str(itoa::Buffer::new().format(total));
            let points = group.points(state, span);
            for (name, values) in [
                ("rate", &points.rate),
                ("error_ratio", &points.error_ratio),
                ("p50", &points.p50),
                ("p99", &points.p99),
                ("in_flight", &points.in_flight),
            ] {
                out.push_str(",\"");
                out.push_str(name);
                out.push_str("\":[");
                for (j, &v) in values.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_number(&mut out, v);
                }
                out.push(']');
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push_str("}\n");
    out
}

/// A JSON number, or `null` for none and for what JSON cannot hold (NaN, infinities).
fn write_number(out: &mut String, v: Option<f64>) {
    match v {
        Some(v) if v.is_finite() => write_f64(out, v),
        _ => out.push_str("null"),
    }
}
