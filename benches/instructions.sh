#!/usr/bin/env bash
# Instructions per request of the throughput servers, counted by valgrind's callgrind: the
# repeatable companion of throughput.sh. Counts do not depend on what else the machine runs,
# so the ratio between a bare app and the same app with a middleware is the same on every run
# (within a fraction of a percent), where requests per second move by 10% on a shared machine.
#
#   bash benches/instructions.sh [axum|actix] [same|varying]
#
# `same` requests GET /users/42 again and again; `varying` a new id every request. Counts are
# user-space instructions of the server process (the kernel's share, the same system calls in
# every mode, is not counted), measured over a few seconds of load from wrk after a warm-up.
# Instructions are not time: a cache miss costs no more instructions than a hit, so this
# complements the timed figures rather than replacing them.
#
# Needs valgrind and wrk (apt-get install -y valgrind wrk). Servers run on 127.0.0.1 only and
# are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
framework=${1:-axum}
workload=${2:-same}
for tool in valgrind callgrind_control callgrind_annotate wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed: apt-get install -y valgrind wrk" >&2; exit 1; }
done
case "$framework" in
  axum) bin=throughput_server ;;
  actix) bin=throughput_server_actix ;;
  *) echo "unknown framework $framework: use axum or actix" >&2; exit 2 ;;
esac
script=()
lua=""
case "$workload" in
  same) ;;
  varying)
    lua=$(mktemp --suffix=.lua)
    echo 'counter = 0
request = function() counter = counter + 7919; return wrk.format("GET", "/users/" .. counter) end' >"$lua"
    script=(-s "$lua") ;;
  *) echo "unknown workload $workload: use same or varying" >&2; exit 2 ;;
esac
cargo build -q --release -p vitals-benches --bin "$bin"
server=target/release/$bin
out=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$out" ${lua:+"$lua"}
}
trap cleanup EXIT

declare -A per_request
for mode in bare noop vitals; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  valgrind --tool=callgrind --callgrind-out-file="$out/$mode" "$server" "$mode" "127.0.0.1:$port" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/users/1" && break; sleep 0.2; done
  wrk -t1 -c8 -d2s "${script[@]}" "http://127.0.0.1:$port/users/42" >/dev/null # warm-up
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$(wrk -t1 -c8 -d5s "${script[@]}" "http://127.0.0.1:$port/users/42" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  total=$(callgrind_annotate "$out/$mode".* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  per_request[$mode]=$((total / requests))
  echo "$mode: ${per_request[$mode]} instructions per request ($requests requests)"
done
for mode in noop vitals; do
  python3 -c "import sys; b, m = map(int, sys.argv[1:]); print(f'$mode vs bare: +{m - b} instructions per request, {m / b:.3f}x')" \
    "${per_request[bare]}" "${per_request[$mode]}"
done
