use vitals_core::instrumented;

#[instrumented(buckets = [0.1, "1s"])]
fn checkout() {}

fn main() {}
