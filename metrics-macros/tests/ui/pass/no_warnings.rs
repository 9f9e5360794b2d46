//! Every form expands to code without a single warning.
#![deny(warnings)]

use vitals_core::instrumented;

#[instrumented]
fn unit() {}

#[instrumented]
fn diverges() -> ! {
    std::process::exit(0)
}

// Regression: a body that only panics has no type of its own; the declared `()` decides.
#[instrumented]
fn only_panics() {
    panic!("on purpose")
}

#[instrumented]
async fn only_panics_async() -> u8 {
    panic!("on purpose")
}

#[instrumented]
fn loops_forever(stop: bool) {
    loop {
        if stop {
            return;
        }
    }
}

#[instrumented]
fn uses_mut(mut n: u32) -> u32 {
    n += 1;
    n
}

#[instrumented]
fn returns_early(n: u32) -> Result<u32, String> {
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n)
}

#[instrumented]
async fn async_unit() {}

#[instrumented]
unsafe fn unsafe_fn(p: *const u8) -> u8 {
    unsafe { *p }
}

struct Thing;

#[instrumented]
impl Thing {
    fn get(&self) -> u32 {
        1
    }

    #[instrumented(skip)]
    fn skipped(&self) {}
}

fn main() {
    unit();
    loops_forever(true);
    let _ = uses_mut(1);
    let _ = returns_early(1);
    let _ = async_unit();
    let byte = 7_u8;
    let _ = unsafe { unsafe_fn(&byte) };
    let _ = Thing.get();
    Thing.skipped();
    if byte == 0 {
        only_panics();
        let _ = only_panics_async();
        diverges();
    }
}
