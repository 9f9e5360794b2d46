use metrics_core::instrumented;

#[instrumented(name = "")]
fn checkout() {}

fn main() {}
