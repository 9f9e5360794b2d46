//! [`LabelValue`]: the field types a `#[derive(LabelSet)]` struct may have.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// A type whose values can be a label value: text (`&str`, `String`, `Cow<str>`,
/// `Box<str>`, `Arc<str>`), integers, `bool`, and field-less enums with
/// `#[derive(LabelValue)]`. Floats are left out on purpose: their text is not stable
/// (`0.1 + 0.2`), and every distinct value would be a series of its own.
///
/// ```
/// use vitals_core::LabelValue;
///
/// let mut seen = Vec::new();
/// 404_u16.visit_value(&mut |v| seen.push(v.to_owned()));
/// true.visit_value(&mut |v| seen.push(v.to_owned()));
/// "GET".visit_value(&mut |v| seen.push(v.to_owned()));
/// assert_eq!(seen, ["404", "true", "GET"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a label value",
    label = "not a label value",
    note = "label values are `&str`, `String`, integers, `bool`, or field-less enums with \
            `#[derive(LabelValue)]`; implement `LabelValue` for types of your own"
)]
pub trait LabelValue {
    /// Calls `visit` once with the value's text.
    fn visit_value(&self, visit: &mut dyn FnMut(&str));
}

impl LabelValue for str {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        visit(self);
    }
}

impl LabelValue for String {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        visit(self);
    }
}

impl LabelValue for bool {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        visit(if *self { "true" } else { "false" });
    }
}

impl<T: LabelValue + ?Sized> LabelValue for &T {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        (**self).visit_value(visit);
    }
}

impl<T: LabelValue + ?Sized> LabelValue for Box<T> {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        (**self).visit_value(visit);
    }
}

impl<T: LabelValue + ?Sized> LabelValue for Arc<T> {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        (**self).visit_value(visit);
    }
}

impl<T: LabelValue + ?Sized> LabelValue for Rc<T> {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        (**self).visit_value(visit);
    }
}

impl LabelValue for Cow<'_, str> {
    fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
        visit(self);
    }
}

macro_rules! integer_label_values {
    ($($t:ty)*) => {$(
        impl LabelValue for $t {
            fn visit_value(&self, visit: &mut dyn FnMut(&str)) {
                visit(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}

integer_label_values!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &dyn LabelValue) -> String {
        let mut out = Vec::new();
        v.visit_value(&mut |s| out.push(s.to_owned()));
        assert_eq!(out.len(), 1, "one value per visit");
        out.remove(0)
    }

    #[test]
    fn every_supported_type_gives_its_text_once() {
        assert_eq!(text(&"a"), "a");
        assert_eq!(text(&String::from("b")), "b");
        assert_eq!(text(&Cow::Borrowed("c")), "c");
        assert_eq!(text(&Box::<str>::from("d")), "d");
        assert_eq!(text(&Arc::<str>::from("e")), "e");
        assert_eq!(text(&Rc::<str>::from("f")), "f");
        assert_eq!(text(&false), "false");
        assert_eq!(text(&-7_i8), "-7");
        assert_eq!(text(&u64::MAX), "18446744073709551615");
        assert_eq!(text(&i128::MIN), "-170141183460469231731687303715884105728");
    }
}
