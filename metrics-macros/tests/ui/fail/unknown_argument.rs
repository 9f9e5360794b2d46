use vitals_core::instrumented;

#[instrumented(nmae = "checkout")]
fn checkout() {}

fn main() {}
