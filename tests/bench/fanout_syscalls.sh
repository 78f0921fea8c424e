#!/bin/bash
# fanout_syscalls.sh - one fan-out run (issue 14 goal 4) with the server's
# syscalls counted: rcbench's figures plus writev / epoll_pwait / write
# (eventfd wakeups) / read / futex per delivery (perf tracepoints, root or
# perf_event_paranoid <= 1) and roomcast_msgs_out_total from /metrics.
#
#   tests/bench/fanout_syscalls.sh BUILD WORKERS RATE [server flags...]
#   e.g. tests/bench/fanout_syscalls.sh build 2 1600 --fanout-delay 10ms
#
# rcbench runs `taskset -c 1`: 1 room x 1000 members, 64-byte messages,
# warm-up 0.5 s, measure 3 s. The server's pinning is PIN in the environment:
#   PIN=one  (default) one worker `taskset -c 0`, two or more unpinned
#   PIN=all  the server on core 0 whatever its workers (the issue's per-core
#            protocol: "each server pinned to one core, the load generator
#            to the other")
#   PIN=none the server unpinned (as session 1 measured 1.37M vs 1.59M)
set -u
B=$(cd "$1" && pwd); W=$2; R=$3; shift 3
cd "$(dirname "$0")/../.."
PORT=$((20000 + RANDOM % 20000)); APORT=$((PORT + 1))
case "${PIN:-one}" in
    one) TS=""; [ "$W" = 1 ] && TS="taskset -c 0" ;;
    all) TS="taskset -c 0" ;;
    none) TS="" ;;
    *) echo "PIN must be one, all or none" >&2; exit 2 ;;
esac
TMP=$(mktemp -d)
$TS "$B/roomcast" -s scripts/fanout.lua -b 127.0.0.1 -p $PORT -w "$W" \
    --admin 127.0.0.1:$APORT --log-level warn "$@" &
SPID=$!
sleep 0.4
perf stat -x, -o "$TMP/perf" -p $SPID -e syscalls:sys_enter_writev,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex &
PERF=$!
taskset -c 1 "$B/tests/bench/rcbench" -S fanout -p $PORT -c 1000 -r "$R" -w 0.5 -d 3 \
    --drain 1 -s 64 --server-pid $SPID --json -q 2>/dev/null >"$TMP/json"
OUT=$(curl -s http://127.0.0.1:$APORT/metrics | awk '/^roomcast_msgs_out_total/ {s += $2} END {print s + 0}')
kill -INT $PERF; wait $PERF 2>/dev/null
kill $SPID; wait $SPID 2>/dev/null
/usr/bin/python3 - "$TMP/json" "$TMP/perf" "$OUT" "$W" "$R" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
calls = {}
for line in open(sys.argv[2]):
    f = line.strip().split(",")
    if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
        calls[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
out = float(sys.argv[3]) or 1.0
s, l = r["server"], r["latency_us"]
print("workers=%s rate=%s delivered=%.4f per_server_cpu_s=%.0f cpu=%.1f%% client_cpu=%.1f%% p50=%.1fms p99=%.1fms"
      % (sys.argv[4], sys.argv[5], r["delivered_ratio"], s["per_cpu_s"], s["cpu_pct"],
         r.get("client_cpu_pct", -1), l["p50"] / 1e3, l["p99"] / 1e3))
print("deliveries=%d " % out + " ".join("%s/delivery=%.4f" % (k, v / out) for k, v in calls.items())
      + " write(eventfd)/publish=%.3f" % (calls.get("write", 0) / (out / 1000.0)))
PY
rm -rf "$TMP"
