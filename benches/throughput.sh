#!/usr/bin/env bash
# Requests per second on loopback, a bare app vs the same app with vitals' middleware.
#
#   bash benches/throughput.sh [rounds] [seconds per round] [axum|actix]
#
# One server per mode runs for the whole benchmark (each on its own port on 127.0.0.1; all are
# stopped at the end), and wrk loads them in turn, in alternating order (bare first, then
# bare last), so that the machine's drift hits every mode alike. Each round compares modes
# measured seconds apart; the result is the median of the per-round ratios, with the spread
# of the middle half of the rounds, because on a shared machine single rounds move by 10%.
# The defaults (60 rounds of 2 s, about 7 minutes) put the median within about a percent;
# 15 rounds left it within the noise of a 3% target.
#
# Besides requests per second, it reads each server's CPU time from /proc: CPU per request
# does not depend on how the scheduler splits the two cores between wrk and the server, so
# it is the steadier figure.
#
# Needs wrk (apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-60}
seconds=${2:-2}
framework=${3:-axum}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }
case "$framework" in
  axum) bin=throughput_server ;;
  actix) bin=throughput_server_actix ;;
  *) echo "unknown framework $framework: use axum or actix" >&2; exit 2 ;;
esac
modes=(bare noop vitals) # noop: a middleware that wraps everything and records nothing
cargo build -q --release -p vitals-benches --bin "$bin"
server=target/release/$bin

declare -A pid port
cleanup() { for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for mode in "${modes[@]}"; do
  port[$mode]=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$server" "$mode" "127.0.0.1:${port[$mode]}" & pid[$mode]=$!
done
url() { echo "http://127.0.0.1:${port[$1]}/users/42"; }
for mode in "${modes[@]}"; do
  for _ in $(seq 50); do curl -s -o /dev/null "$(url "$mode")" 2>/dev/null && break; sleep 0.1; done
  wrk -t1 -c32 -d1s "$(url "$mode")" >/dev/null # warm up
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of a process, in clock ticks
hz=$(getconf CLK_TCK)

# Prints "<requests per second> <server CPU microseconds per request>" for one mode.
measure() { # mode
  local before after out
  before=$(ticks "${pid[$1]}")
  out=$(wrk -t1 -c32 -d"${seconds}s" "$(url "$1")")
  after=$(ticks "${pid[$1]}")
  echo "$out" | awk -v cpu=$((after - before)) -v hz="$hz" '
    /requests in/ {n = $1} /Requests\/sec/ {r = $2}
    END {printf "%s %.3f\n", r, cpu / hz * 1e6 / n}'
}

results=()
for round in $(seq "$rounds"); do
  order=("${modes[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#modes[@]} - 1; i >= 0; i--)); do order+=("${modes[i]}"); done
  fi
  line="round $round:"
  for mode in "${order[@]}"; do
    read -r r c <<<"$(measure "$mode")"
    results+=("$round $mode $r $c")
    line="$line $mode $r req/s ($c µs CPU/request);"
  done
  echo "$line"
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = [arg.split() for arg in sys.argv[1:]]
by = {(r[0], r[1]): (float(r[2]), float(r[3])) for r in rows}
rounds = sorted({r[0] for r in rows}, key=int)
modes = list(dict.fromkeys(r[1] for r in rows))
def spread(values):
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"{statistics.median(values):.3f} (middle half {q[0]:.3f} to {q[2]:.3f})"
for m in modes:
    rps = statistics.median(by[(r, m)][0] for r in rounds)
    cpu = statistics.median(by[(r, m)][1] for r in rounds)
    print(f"median {m}: {rps:.0f} req/s, {cpu:.2f} µs server CPU per request")
for m in modes[1:]:
    throughput = [by[(r, m)][0] / by[(r, "bare")][0] for r in rounds]
    efficiency = [by[(r, "bare")][1] / by[(r, m)][1] for r in rounds]
    print(f"{m} vs bare over {len(rounds)} rounds: throughput {spread(throughput)}; "
          f"CPU per request bare/{m} {spread(efficiency)}")
PY
