#!/usr/bin/env bash
# history_bench.sh - the two history rows of RESULTS.md (issue 10):
#   1. fan-out 1 room x 1000 members at 1000 publishes/s (scripts/fanout.lua)
#      with --history sqlite:FILE against --history memory: deliveries per
#      server CPU-second (the goal: SQLite >= 90 % of memory);
#   2. storebench: the SQLite store's own append rate in batches (goal
#      >= 100k messages/s).
# Server pinned to CPU 0, rcbench to CPU 1 (as run.sh). Loopback only,
# bounded: 5 s measured per server.
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${RC_BENCH_BUILD:-$root/build}"
dur="${RC_HISTORY_BENCH_SECONDS:-5}"
tmp="$(mktemp -d /tmp/rc-histbench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
ulimit -n 65536 2>/dev/null || true

row() { # $1 label, $2... roomcast history flag
    local label="$1"; shift
    local port=$((20000 + RANDOM % 20000))
    taskset -c 0 "$build/roomcast" -b 127.0.0.1 -p "$port" -w 1 --admin off \
        -s "$root/scripts/fanout.lua" "$@" >"$tmp/$label.log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$tmp/$label.log" && break; sleep 0.1; done
    taskset -c 1 "$build/tests/bench/rcbench" -q --json -S fanout -c 1000 -r 1000 -s 32 \
        -w 1 -d "$dur" -p "$port" --server-pid "$pid" --label "$label" >"$tmp/$label.json"
    kill -TERM "$pid"; wait "$pid" || true
    /usr/bin/python3 - "$tmp/$label.json" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu = r.get("server_cpu_s") or r.get("server", {}).get("cpu_s")
print(json.dumps({"label": sys.argv[2], "received": r.get("received"),
                  "cpu_s": cpu, "raw_keys": sorted(r.keys())}))
PY
}
row memory --history memory
row sqlite --history "sqlite:$tmp/fanout.db"
"$build/tests/bench/storebench" --json -d "$tmp"
