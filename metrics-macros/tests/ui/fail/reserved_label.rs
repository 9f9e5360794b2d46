use vitals_core::instrumented;

#[instrumented(labels(team = "billing", result = "always"))]
fn checkout() {}

fn main() {}
