#!/usr/bin/env python3
"""Load and soak test of both example apps, on loopback, bounded in time.

    python3 benches/load.py [--seconds N] [--apps axum,actix] [--connections C]

For each app (built in release mode, started on a free port of 127.0.0.1 and stopped at the
end), it runs at once, for N seconds:

  * wrk on GET /users/42 (C connections), counting the answers it got by status;
  * wrk on a 404 scan: a new random path for every request;
  * a scraper that reads /metrics every 100 ms and checks each scrape's invariants: counters
    never go down between scrapes, histogram buckets are cumulative and end in _count, no
    in-flight gauge is negative, and the number of series stays bounded whatever the scan.

Afterwards it checks the counts: every answer wrk received is counted under its route and
status, and the server's total exceeds wrk's by at most one request per connection (those
cut off when wrk stopped, counted as 499 or as answered, but never seen by wrk). It reads the
server's resident memory after a warm-up and at the end, and fails when it grew by more than
--rss-growth MiB (default 16). It prints one line of figures per app; BENCHMARKS.md quotes them.

Needs wrk (apt-get install -y wrk; `bash .ci/test` installs it).
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCAN_LUA = """
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/scan/" .. math.random(1, 1000000000) .. "/x" .. math.random(1, 1000000))
end
"""

COUNT_LUA = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() statuses = {} end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, status .. "=" .. n) end
  io.write("STATUSES " .. table.concat(parts, ",") .. "\\n")
end
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(text):
    """Samples of a Prometheus text exposition: {(name, frozenset(labels)): value}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError(f"unparseable line: {line!r}")
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Scraper(threading.Thread):
    """Scrapes every 100 ms until stopped, checking every scrape against the one before."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.scrapes, self.errors = port, threading.Event(), 0, []
        self.max_series = 0

    def run(self):
        previous = {}
        while not self.stop.is_set():
            try:
                samples = parse(get(self.port, "/metrics"))
            except Exception as e:  # a failed scrape is a finding, not a reason to stop
                self.errors.append(f"scrape failed: {e}")
                time.sleep(0.1)
                continue
            self.scrapes += 1
            self.max_series = max(self.max_series, len(samples))
            self.check(samples, previous)
            previous = samples
            time.sleep(0.1)

    def check(self, samples, previous):
        for (name, labels), value in samples.items():
            counter = name.endswith("_total") or name.endswith("_count") or name.endswith("_bucket") \
                or name.endswith("_sum")
            old = previous.get((name, labels))
            if counter and old is not None and value < old:
                self.errors.append(f"{name}{dict(labels)} went down: {old} -> {value}")
            if "in_flight" in name and value < 0:
                self.errors.append(f"{name}{dict(labels)} is negative: {value}")
        buckets = {}
        for (name, labels), value in samples.items():
            if name.endswith("_bucket"):
                rest = frozenset(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                buckets.setdefault((name[:-7], rest), []).append(
                    (float("inf") if le == "+Inf" else float(le), value))
        for (base, rest), points in buckets.items():
            points.sort()
            counts = [v for _, v in points]
            if counts != sorted(counts):
                self.errors.append(f"{base}{dict(rest)} buckets not cumulative: {counts}")
            count = samples.get((base + "_count", rest))
            if count is not None and count != counts[-1]:
                self.errors.append(f"{base}{dict(rest)} _count {count} != +Inf {counts[-1]}")


def wrk(port, path, seconds, connections, script_text):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(script_text)
    script.close()
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        os.unlink(script.name)
    return out


def statuses(out):
    line = next((l for l in out.splitlines() if l.startswith("STATUSES ")), "STATUSES ")
    return {int(k): int(v) for k, v in
            (p.split("=") for p in line[len("STATUSES "):].split(",") if p)}


def requests_per_second(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def route_totals(samples, route):
    """{status: count} of http_requests_total for GET on a route."""
    totals = {}
    for (name, labels), value in samples.items():
        d = dict(labels)
        if name == "http_requests_total" and d.get("route") == route and d.get("method") == "GET":
            totals[int(d["status"])] = value
    return totals


def run_app(app, seconds, connections, rss_growth):
    binary = os.path.join(ROOT, "target", "release", f"{app}-app")
    port = free_port()
    server = subprocess.Popen([binary], env={**os.environ, "LISTEN": f"127.0.0.1:{port}"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    failures = []
    try:
        for _ in range(100):
            try:
                get(port, "/")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"{app}-app did not start")
        # Warm-up: allocations that happen once (series, buffers, thread pools).
        wrk(port, "/users/42", 2, connections, COUNT_LUA)
        wrk(port, "/scan", 2, connections, SCAN_LUA + COUNT_LUA)
        before = route_totals(parse(get(port, "/metrics")), "/users/{id}")
        rss_before = rss_mib(server.pid)

        scraper = Scraper(port)
        scraper.start()
        results = {}
        scan_connections = max(1, connections // 4)
        threads = [
            threading.Thread(target=lambda: results.__setitem__(
                "users", wrk(port, "/users/42", seconds, connections, COUNT_LUA))),
            threading.Thread(target=lambda: results.__setitem__(
                "scan", wrk(port, "/scan", seconds, scan_connections, SCAN_LUA + COUNT_LUA))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.3)  # requests cut off by wrk's stop finish recording
        scraper.stop.set()
        scraper.join()
        rss_after = rss_mib(server.pid)
        final = parse(get(port, "/metrics"))

        users = statuses(results["users"])
        scan = statuses(results["scan"])
        after = route_totals(final, "/users/{id}")
        answered = sum(users.values())
        for status, n in users.items():
            counted = after.get(status, 0) - before.get(status, 0)
            if counted < n:
                failures.append(f"/users/{{id}} {status}: wrk got {n} answers, {counted} counted")
        counted_total = sum(after.values()) - sum(before.values())
        if not answered <= counted_total <= answered + connections:
            failures.append(f"/users/{{id}}: {counted_total} counted for {answered} answered "
                            f"(at most {connections} more may have been cut off)")
        unmatched = route_totals(final, "__unmatched__")
        scanned = sum(scan.values())
        if unmatched.get(404, 0) < scanned:
            failures.append(f"scan: {scanned} 404s answered, {unmatched.get(404, 0)} counted")
        series = len(final)
        failures += scraper.errors[:10]
        if scraper.scrapes < seconds * 5:
            failures.append(f"only {scraper.scrapes} scrapes in {seconds} s")
        if rss_after - rss_before > rss_growth:
            failures.append(f"resident memory grew {rss_after - rss_before:.1f} MiB "
                            f"({rss_before:.1f} -> {rss_after:.1f}) after the warm-up")
        figures = {
            "app": app,
            "seconds": seconds,
            "users_rps": round(requests_per_second(results["users"])),
            "scan_rps": round(requests_per_second(results["scan"])),
            "answered": answered,
            "scanned": scanned,
            "scrapes": scraper.scrapes,
            "max_series": scraper.max_series,
            "final_series": series,
            "rss_mib_before": round(rss_before, 1),
            "rss_mib_after": round(rss_after, 1),
        }
        print(json.dumps(figures))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--apps", default="axum,actix")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rss-growth", type=float, default=16.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (or run bash .ci/test)")
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    subprocess.run(["cargo", "build", "-q", "--release"] +
                   [arg for a in apps for arg in ("-p", f"{a}-app")], cwd=ROOT, check=True)
    failures = []
    for app in apps:
        failures += [f"{app}: {f}" for f in run_app(app, args.seconds, args.connections,
                                                     args.rss_growth)]
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
