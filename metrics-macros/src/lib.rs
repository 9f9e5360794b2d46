//! The `#[instrumented]` attribute and the `LabelSet` and `LabelValue` derives of vitals. Use
//! them through `vitals_core` (re-exported by default); the documentation with examples is
//! there.
//!
//! The generated code names only `::vitals_core::__private` paths (or those of the path given
//! with `crate = ..`), so the crate that uses the attribute depends on `vitals-core`, under
//! that name or another one it gives.
#![forbid(unsafe_code)]

mod attr;
mod derive;
mod expand;

use proc_macro::TokenStream;

/// (This attribute is defined in the `vitals-macros` crate; `vitals-core` re-exports it
/// with the documentation above.)
#[proc_macro_attribute]
pub fn instrumented(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrumented(args.into(), item.into()).into()
}

/// (This derive is defined in the `vitals-macros` crate; `vitals-core` re-exports it with
/// its documentation.)
#[proc_macro_derive(LabelSet, attributes(label))]
pub fn derive_label_set(item: TokenStream) -> TokenStream {
    derive::expand(item.into(), derive::label_set).into()
}

/// (This derive is defined in the `vitals-macros` crate; `vitals-core` re-exports it with
/// its documentation.)
#[proc_macro_derive(LabelValue, attributes(label))]
pub fn derive_label_value(item: TokenStream) -> TokenStream {
    derive::expand(item.into(), derive::label_value).into()
}
