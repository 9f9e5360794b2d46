use vitals_core::instrumented;

#[instrumented(name = checkout)]
fn checkout() {}

fn main() {}
