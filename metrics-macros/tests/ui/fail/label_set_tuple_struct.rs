use vitals_core::LabelSet;

#[derive(LabelSet)]
struct Route(&'static str, u16);

fn main() {}
