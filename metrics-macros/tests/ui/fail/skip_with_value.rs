use vitals_core::instrumented;

#[instrumented(skip = true)]
fn checkout() {}

fn main() {}
