use vitals_core::LabelSet;

#[derive(LabelSet)]
struct Reading {
    sensor: String,
    celsius: f64,
}

fn main() {}
