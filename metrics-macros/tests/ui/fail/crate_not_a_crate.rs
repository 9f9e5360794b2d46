// `crate = ..` names a path that has no `__private` module: the error points at the path.
mod not_the_core {}

#[vitals_core::instrumented(crate = not_the_core)]
fn checkout() {}

fn main() {}
