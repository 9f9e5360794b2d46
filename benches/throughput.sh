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

rps() { # mode
  "$server" "$1" "127.0.0.1:$port" & pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/users/1" 2>/dev/null && break; sleep 0.1; done
  wrk -t1 -c32 -d"${seconds}s" "http://127.0.0.1:$port/users/42" | awk '/Requests\/sec/ {print $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

declare -a bare vitals
for round in $(seq "$rounds"); do
  bare+=("$(rps bare)")
  vitals+=("$(rps vitals)")
  echo "round $round: bare ${bare[-1]} req/s, vitals ${vitals[-1]} req/s"
done
python3 - "${bare[*]}" "${vitals[*]}" <<'PY'
import statistics, sys
bare = [float(x) for x in sys.argv[1].split()]
vitals = [float(x) for x in sys.argv[2].split()]
b, v = statistics.median(bare), statistics.median(vitals)
print(f"median bare {b:.0f} req/s, vitals {v:.0f} req/s: vitals/bare = {v / b:.3f}")
PY
