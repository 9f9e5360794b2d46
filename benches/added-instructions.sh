#!/usr/bin/env bash
# Instructions each middleware adds per request, in process, next to its peer: the repeatable
# companion of `cargo bench --bench paired` (times move by 20% on a shared machine; these
# counts repeat to a few instructions).
#
#   bash benches/added-instructions.sh [REQUESTS]
#
# For every workload of benches/benches/paired.rs (axum; actix on a repeated path, a static
# route, a new id every request) and every variant (bare, no-op, vitals, the peer), runs the
# variant alone under valgrind's callgrind, counting only the measured requests (after a
# warm-up; see `paired --count`), and prints the instructions per request and what each adds
# to the bare app. Instructions are not time: an atomic read-modify-write or a cache miss
# costs no more instructions than an add, so this complements the timed figures.
#
# Needs valgrind (apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install -y valgrind" >&2; exit 1; }
cargo bench -q -p vitals-benches --bench paired --no-run 2>/dev/null
bin=$(ls -t target/release/deps/paired-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

workloads=("axum, GET /users/42" "actix, repeated path" "actix, static route" "actix, a new id every request")
variants=("bare" "no-op" "vitals" "peer")
for w in 0 1 2 3; do
  declare -a per=()
  for v in 0 1 2 3; do
    valgrind --tool=callgrind --toggle-collect='*paired::measured*' \
      --callgrind-out-file="$out/$w.$v" "$bin" --count "$w" "$v" "$requests" >"$out/log" 2>&1
    measured=$(awk '/requests measured/ {print $(NF-2)}' "$out/log")
    total=$(callgrind_annotate "$out/$w.$v" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    per[$v]=$((total / measured))
  done
  python3 - "${workloads[$w]}" "${per[@]}" <<'EOF'
import sys
name, bare, noop, vitals, peer = sys.argv[1], *map(int, sys.argv[2:])
print(f"{name}: bare {bare} instructions per request")
print(f"  no-op  +{noop - bare}")
print(f"  vitals +{vitals - bare}")
print(f"  peer   +{peer - bare}")
print(f"  vitals' added instructions / the peer's: {(vitals - bare) / (peer - bare):.2f}")
EOF
done
