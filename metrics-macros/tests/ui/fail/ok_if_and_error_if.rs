use vitals_core::instrumented;

fn ok(_: &u32) -> bool {
    true
}

#[instrumented(ok_if = ok, error_if = ok)]
fn checkout() -> u32 {
    1
}

fn main() {}
