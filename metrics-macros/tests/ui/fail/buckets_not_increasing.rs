use vitals_core::instrumented;

#[instrumented(buckets = [0.1, 0.5, 0.5, 1.0])]
fn checkout() {}

fn main() {}
