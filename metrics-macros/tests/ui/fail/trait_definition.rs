use vitals_core::instrumented;

#[instrumented]
trait Repository {
    fn load(&self) -> u32;
}

fn main() {}
