use vitals_core::instrumented;

fn is_bad(code: &str) -> bool {
    code.is_empty()
}

#[instrumented(error_if = is_bad)]
fn checkout() -> u32 {
    1
}

fn main() {}
