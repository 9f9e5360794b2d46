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

/// A JSON string: `"`, `\` and control characters escaped, and with `ascii` every character
/// beyond ASCII too (as `\uXXXX`, surrogate pairs past the first plane), as Python's
/// `json.dumps` does by default (which spells two control characters, `\b` and `\f`, short).
pub(crate) fn json_string(out: &mut String, s: &str, ascii: bool) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
