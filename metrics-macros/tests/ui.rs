//! Misuse of `#[instrumented]` is a compile error at the offending token.
//!
//! The `.stderr` files hold the compiler's exact output, which changes between compiler
//! versions, so they are written by one pinned toolchain (the one CI uses). Regenerate them
//! after a deliberate change with `TRYBUILD=overwrite cargo test -p vitals-macros --test ui`
//! and review the diff.

/// The toolchain that wrote the `.stderr` files.
const PINNED: &str = "rustc 1.95.";

#[test]
fn ui() {
    let version = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
        .arg("--version")
        .output()
        .expect("rustc runs");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(PINNED),
        "the UI tests' .stderr files were written by {PINNED}x and this is {version}; run them \
         with that toolchain (`rustup run 1.95 cargo test -p vitals-macros --test ui`) or \
         regenerate them with TRYBUILD=overwrite and review the diff"
    );
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
