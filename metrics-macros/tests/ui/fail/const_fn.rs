use vitals_core::instrumented;

#[instrumented]
const fn answer() -> u32 {
    42
}

fn main() {}
