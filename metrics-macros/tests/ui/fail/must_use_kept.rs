// The function's other attributes survive the expansion: `#[must_use]` still warns.
#![deny(unused_must_use)]

use vitals_core::instrumented;

#[instrumented]
#[must_use = "the total is the point"]
fn total() -> u32 {
    42
}

fn main() {
    total();
}
