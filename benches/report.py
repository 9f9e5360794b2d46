#!/usr/bin/env python3
"""Turns the output of one `cargo bench -p vitals-benches --bench core` run into the ratio
tables of BENCHMARKS.md.

    cargo bench -p vitals-benches --bench core -- --noplot | tee bench.txt
    python3 benches/report.py bench.txt

Each table lists every crate's median time from that one run and its ratio to each vitals
variant (a peer's time divided by ours: above 1 means we are faster). Absolute times move between runs and
machines; only ratios from the same run are compared.
"""
import re
import sys
from collections import OrderedDict

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
RESULT = re.compile(
    r"^(?P<id>[a-z0-9_]+/[A-Za-z0-9_/]+)\s*\n?\s*time:\s+\[[\d.]+ \S+ (?P<mid>[\d.]+) (?P<unit>\S+) [\d.]+ \S+\]",
    re.M,
)


def fmt(ns):
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.1f} ns"


def main(path):
    groups = OrderedDict()
    for m in RESULT.finditer(open(path, encoding="utf-8").read()):
        parts = m.group("id").split("/")
        group = parts[0] if len(parts) == 2 else f"{parts[0]} ({parts[2]})"
        groups.setdefault(group, OrderedDict())[parts[1]] = float(m.group("mid")) * UNITS[m.group("unit")]
    for group, results in groups.items():
        ours = [k for k in results if k.startswith("vitals")]
        print(f"### {group}\n")
        print("| implementation | median | " + " | ".join(f"÷ {k}" for k in ours) + " |")
        print("|---|---|" + "---|" * len(ours))
        for name, ns in results.items():
            ratios = " | ".join("—" if name == k else f"{ns / results[k]:.2f}" for k in ours)
            print(f"| {name} | {fmt(ns)} | {ratios} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
