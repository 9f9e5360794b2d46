use vitals_core::LabelValue;

#[derive(LabelValue)]
enum Outcome {
    Ok,
    Failed { code: u16 },
}

fn main() {}
