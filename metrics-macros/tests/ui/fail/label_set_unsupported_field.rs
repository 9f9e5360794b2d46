use vitals_core::LabelSet;

#[derive(LabelSet)]
struct Job {
    queue: String,
    tags: Vec<String>,
}

fn main() {}
