use vitals_core::instrumented;

#[instrumented(name = "")]
fn checkout() {}

fn main() {}
