use metrics_core::instrumented;

#[instrumented(skip = true)]
fn checkout() {}

fn main() {}
