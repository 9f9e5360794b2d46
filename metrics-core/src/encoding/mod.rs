//! Exposition formats: what a scrape of a [`Registry`](crate::Registry) returns.
//!
//! | format | module | content type |
//! |---|---|---|
//! | Prometheus text 0.0.4 | [`text`] | [`text::CONTENT_TYPE`] |

pub mod text;

/// Writes `v` as the Prometheus formats spell floats: `+Inf`, `-Inf`, `NaN`, or the shortest
/// decimal that reads back as the same number.
pub(crate) fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

pub(crate) fn write_number(out: &mut String, n: crate::value::Number) {
    use crate::value::Number;
    match n {
        Number::U64(v) => out.push_str(itoa::Buffer::new().format(v)),
        Number::I64(v) => out.push_str(itoa::Buffer::new().format(v)),
        Number::F64(v) => write_f64(out, v),
    }
}

/// Appends a label value with `\`, `"` and newlines escaped.
pub(crate) fn write_escaped_label_value(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
