use vitals_core::instrumented;

#[instrumented(name = "checkout", name = "pay")]
fn checkout() {}

fn main() {}
