//! The `#[instrumented]` attribute of vitals. Use it through `vitals_core::instrumented`
//! (re-exported by default); the documentation with examples is there.
//!
//! The generated code names only `::vitals_core::__private` paths (or those of the path given
//! with `crate = ..`), so the crate that uses the attribute depends on `vitals-core`, under
//! that name or another one it gives.

mod attr;
mod expand;

use proc_macro::TokenStream;

/// (This attribute is defined in the `vitals-macros` crate; `vitals-core` re-exports it
/// with the documentation above.)
#[proc_macro_attribute]
pub fn instrumented(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrumented(args.into(), item.into()).into()
}
