use vitals_core::instrumented;

fn main() {
    let add = #[instrumented] |a: u32, b: u32| a + b;
    add(1, 2);
}
