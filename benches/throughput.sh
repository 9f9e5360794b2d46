#!/usr/bin/env bash
# Requests per second on loopback, a bare app vs the same app with vitals' middleware,
# measured with wrk in alternating rounds so that a noisy machine hurts both alike.
#
#   bash benches/throughput.sh [rounds] [seconds per round] [axum|actix]
#
# Needs wrk (apt-get install -y wrk). Servers run on 127.0.0.1 only and are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}
seconds=${2:-8}
framework=${3:-axum}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }
case "$framework" in
  axum) bin=throughput_server ;;
  actix) bin=throughput_server_actix ;;
  *) echo "unknown framework $framework: use axum or actix" >&2; exit 2 ;;
esac
cargo build -q --release -p vitals-benches --bin "$bin"
server=target/release/$bin
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of a process, in clock ticks
hz=$(getconf CLK_TCK)

# Prints "<requests per second> <server CPU microseconds per request>" for one mode. CPU per
# request is the steadier figure on a shared machine: it does not depend on how the scheduler
# splits the two cores between wrk and the server.
rps() { # mode
  "$server" "$1" "127.0.0.1:$port" & pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/users/1" 2>/dev/null && break; sleep 0.1; done
  local before after out
  before=$(ticks "$pid")
  out=$(wrk -t1 -c32 -d"${seconds}s" "http://127.0.0.1:$port/users/42")
  after=$(ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  echo "$out" | awk -v cpu=$((after - before)) -v hz="$hz" '
    /requests in/ {n = $1} /Requests\/sec/ {r = $2}
    END {printf "%s %.3f\n", r, cpu / hz * 1e6 / n}'
}

# axum also runs a layer that records nothing: the floor under any body-watching middleware.
modes="bare vitals"
if [ "$framework" = axum ]; then modes="bare noop vitals"; fi
results=()
for round in $(seq "$rounds"); do
  line="round $round:"
  for mode in $modes; do
    read -r r c <<<"$(rps "$mode")"
    results+=("$mode $r $c")
    line="$line $mode $r req/s ($c µs CPU/request);"
  done
  echo "$line"
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = [arg.split() for arg in sys.argv[1:]]
modes = list(dict.fromkeys(r[0] for r in rows))
rps = {m: statistics.median(float(r[1]) for r in rows if r[0] == m) for m in modes}
cpu = {m: statistics.median(float(r[2]) for r in rows if r[0] == m) for m in modes}
for m in modes:
    print(f"median {m}: {rps[m]:.0f} req/s, {cpu[m]:.2f} µs server CPU per request")
bare_rps, bare_cpu = rps["bare"], cpu["bare"]
for m in modes[1:]:
    print(f"{m} vs bare: throughput {rps[m] / bare_rps:.3f}, CPU per request bare/{m} {bare_cpu / cpu[m]:.3f}")
PY
