use vitals_core::instrumented;

#[instrumented]
struct Handler {
    name: String,
}

fn main() {}
