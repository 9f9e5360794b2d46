use vitals_core::LabelSet;

#[derive(LabelSet)]
struct Request {
    #[label(value = "m")]
    method: String,
}

fn main() {}
