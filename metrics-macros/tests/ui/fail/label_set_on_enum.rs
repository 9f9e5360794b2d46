use vitals_core::LabelSet;

#[derive(LabelSet)]
enum Outcome {
    Ok,
    Failed,
}

fn main() {}
