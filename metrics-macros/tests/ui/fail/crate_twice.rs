#[vitals_core::instrumented(crate = vitals_core, crate = vitals_core)]
fn checkout() {}

fn main() {}
