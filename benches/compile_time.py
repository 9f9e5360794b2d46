#!/usr/bin/env python3
"""What #[instrumented] adds to a crate's build time, next to what #[autometrics] adds.

Writes three crates with the same 300 functions (150 returning Result, 100 async, 50 methods
in 10 impl blocks): plain, with #[instrumented], with #[autometrics]. Builds each once so that
their dependencies are compiled, then rebuilds each crate alone (dependencies untouched,
incremental compilation off) ROUNDS times, interleaved, and reports the medians and the time
each attribute adds over the plain crate.

    python3 benches/compile_time.py [ROUNDS]      # default 5; needs network for crates.io once

Only ratios from one run mean anything on a shared machine.
"""

import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "compile-time"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5

VARIANTS = {
    "plain": ("", ""),
    "instrumented": ("use vitals_core::instrumented;\n", "#[instrumented]"),
    "autometrics": ("use autometrics::autometrics;\n", "#[autometrics]"),
}

DEPENDENCIES = {
    "plain": "",
    "instrumented": f'vitals-core = {{ path = "{ROOT / "metrics-core"}" }}\n',
    "autometrics": 'autometrics = { version = "3", default-features = false, '
    'features = ["prometheus-client-0_22"] }\n',
}


def source(use: str, attr: str) -> str:
    out = ["#![allow(dead_code, clippy::all)]\n", use, "\n#[derive(Debug)]\npub struct Failed(u64);\n"]
    for i in range(150):
        out.append(
            f"""
{attr}
pub fn work_{i}(x: u64) -> Result<u64, Failed> {{
    if x % {i + 2} == 0 {{
        return Err(Failed(x));
    }}
    let v: Vec<u64> = (0..x % 16).map(|n| n * {i}).collect();
    Ok(v.iter().sum())
}}
"""
        )
    for i in range(100):
        out.append(
            f"""
{attr}
pub async fn fetch_{i}(id: u64) -> Option<String> {{
    if id == {i} {{ None }} else {{ Some(format!("item {{id}}")) }}
}}
"""
        )
    for t in range(10):
        methods = "".join(
            f"""
    pub fn method_{m}(&mut self, n: u64) -> u64 {{
        self.total += n * {m};
        self.total
    }}
"""
            for m in range(5)
        )
        out.append(
            f"""
pub struct Service{t} {{ total: u64 }}

{attr}
impl Service{t} {{{methods}}}
"""
        )
    return "".join(out)


def write(name: str) -> pathlib.Path:
    use, attr = VARIANTS[name]
    crate = WORK / name
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text(
        f"""[package]
name = "ct-{name}"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
{DEPENDENCIES[name]}"""
    )
    (crate / "src" / "lib.rs").write_text(source(use, attr))
    return crate


def build(crate: pathlib.Path) -> float:
    env = dict(os.environ, CARGO_TARGET_DIR=str(WORK / "target"), CARGO_INCREMENTAL="0")
    (crate / "src" / "lib.rs").touch()
    start = time.perf_counter()
    subprocess.run(
        ["cargo", "build", "--quiet"],
        cwd=crate,
        env=env,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    crates = {name: write(name) for name in VARIANTS}
    for crate in crates.values():
        build(crate)  # dependencies, once
    times = {name: [] for name in VARIANTS}
    for _ in range(ROUNDS):
        for name, crate in crates.items():
            times[name].append(build(crate))
    median = {name: statistics.median(t) for name, t in times.items()}
    plain = median["plain"]
    ours = median["instrumented"] - plain
    theirs = median["autometrics"] - plain
    print(f"crate with 300 functions, debug build of the crate alone, median of {ROUNDS} rounds")
    print(f"{'variant':<14} {'build (s)':>10} {'added (s)':>10}")
    for name in VARIANTS:
        print(f"{name:<14} {median[name]:>10.2f} {median[name] - plain:>10.2f}")
    if theirs > 0:
        print(f"#[instrumented] adds {ours / theirs:.2f} of what #[autometrics] adds")


if __name__ == "__main__":
    main()
