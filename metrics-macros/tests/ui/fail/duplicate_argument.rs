use metrics_core::instrumented;

#[instrumented(name = "checkout", name = "pay")]
fn checkout() {}

fn main() {}
