//! Number and label-value formatting as the text formats spell them, shared by the
//! encoders and by what renders text in advance (bucket bounds, label sets).

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
