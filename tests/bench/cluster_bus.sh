#!/usr/bin/env bash
# cluster_bus.sh [NODES_MAX] [MESSAGES] [WINDOW] [BYTES] - the cluster bus scenario.
#
# Runs build/tests/bench/busbench against one redis-server (its own, on a free
# port in a temp dir) for 1 .. NODES_MAX nodes: one room with members on every
# node, MESSAGES publishes spread over the nodes, WINDOW in flight, payloads of
# BYTES. Prints one JSON line per run and a table with each row's ratio to the
# one-node row (deliveries per process CPU-second, Redis CPU per publish).
# Defaults suit a 2-core machine (2 nodes, 20000 messages); on a bigger one,
# e.g. `cluster_bus.sh 8 200000 1024 256`. Only 127.0.0.1; bounded by MESSAGES.
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${RC_BENCH_BUILD:-$root/build}"
nmax="${1:-2}"
msgs="${2:-20000}"
window="${3:-256}"
bytes="${4:-64}"
command -v redis-server >/dev/null || { echo "cluster_bus.sh: redis-server not installed" >&2; exit 1; }
cmake --build "$build" --target busbench -j2 >/dev/null
out="${RC_BENCH_OUT:-$root/bench-out}"
mkdir -p "$out"
: >"$out/cluster-bus.jsonl"
for n in $(seq 1 "$nmax"); do
    "$build/tests/bench/busbench" -n "$n" -m "$msgs" -w "$window" -s "$bytes" 2>/dev/null |
        tee -a "$out/cluster-bus.jsonl"
done
/usr/bin/python3 - "$out/cluster-bus.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = rows[0]
print("\n| nodes | publishes/s | deliveries/node/s | deliveries per CPU-s | vs 1 node "
      "| Redis CPU us/publish | commands/publish | client calls/publish | ack p99 ms "
      "| delivery p99 ms | gaps |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %d | %.0f | %.0f | %.0f | %.2fx | %.2f | %.2f | %.2f | %.2f | %.2f | %d |" % (
        r["nodes"], r["publishes_per_s"], r["deliveries_per_node_per_s"],
        r["deliveries_per_cpu_s"], r["deliveries_per_cpu_s"] / base["deliveries_per_cpu_s"],
        r["redis_cpu_us_per_publish"], r["redis_commands_per_publish"],
        r["client_calls_per_publish"], r["ack_p99_ms"], r["delivery_p99_ms"], r["gaps"]))
PY
