//! The `#[instrumented]` attribute of vitals. Use it through `metrics_core::instrumented`
//! (re-exported by default); the documentation with examples is there.
//!
//! The generated code names only `::metrics_core::__private` paths, so the crate that uses the
//! attribute needs `metrics-core` as a dependency.

mod attr;
mod expand;

use proc_macro::TokenStream;

/// (This attribute is defined in the `metrics-macros` crate; `metrics-core` re-exports it
/// with the documentation above.)
#[proc_macro_attribute]
pub fn instrumented(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrumented(args.into(), item.into()).into()
}
