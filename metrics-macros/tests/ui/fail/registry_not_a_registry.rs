use vitals_core::instrumented;

static LIMIT: u32 = 10;

#[instrumented(registry = LIMIT)]
fn checkout() {}

fn main() {}
