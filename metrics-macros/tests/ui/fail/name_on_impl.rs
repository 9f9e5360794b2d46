use vitals_core::instrumented;

struct Cart;

#[instrumented(name = "cart")]
impl Cart {
    fn total(&self) -> u32 {
        0
    }
}

fn main() {}
