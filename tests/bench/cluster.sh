#!/usr/bin/env bash
# cluster.sh [--nodes N] [--workers W] [--members M] [--rate R] [--duration S]
#            [--size B] [--reps K] - one room fanned out over a Redis cluster.
#
# Starts its own redis-server (free port, temp dir, --save "" --appendonly no)
# and N roomcast nodes (scripts/fanout.lua, W workers each, --redis on that
# server), then runs rcbench -S fanout with M members spread round-robin over
# the nodes (-p PORT1,PORT2,...: member i on node i mod N, the publisher on the
# first), R publishes/s of B bytes for S measured seconds. In the same run the
# same room on ONE node without Redis (W workers, all M members there). Each
# pair runs K times, alternating; the table gives every run and the medians
# (column by column):
#
#   deliveries per node CPU-second  sum of deliveries / sum of the nodes' CPU
#                                   seconds (/proc/PID/stat, measure window)
#   Redis CPU per publish           redis-server's CPU over the window / publishes
#   commands per publish            INFO commandstats calls over the window
#                                   (INFO itself left out) / publishes
#   p99, delivered %                rcbench's latency histogram, deliveries /
#                                   (publishes x members)
#
# Every option has an environment twin (NODES WORKERS MEMBERS RATE DURATION
# SIZE REPS; WARMUP, CLIENT_THREADS too). Defaults suit a 2-core machine:
# 2 nodes x 1 worker, 1000 members, 100 publishes/s, 3 s, 64 bytes, 3 reps.
# Pinning, as run.sh pins servers: the last CLIENT_THREADS CPUs for rcbench,
# the rest is the servers' pool; node i takes W CPUs of the pool from i*W
# (wrapping), redis-server the next one. On 2 cores that is every server on
# CPU 0 and rcbench on CPU 1. RC_CLUSTER_PIN=0: no pinning. On a bigger
# machine, e.g. `cluster.sh --nodes 6 --workers 2 --members 20000 --rate 200
# --reps 3` (15 CPUs: 12 for nodes, 1 for Redis, 2 for CLIENT_THREADS=2).
#
# Only 127.0.0.1; every rcbench run is bounded (timeout, -n, -d); every
# process started here is stopped on exit. Writes bench-out/cluster.jsonl.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${RC_BENCH_BUILD:-$root/build}"
out="${RC_BENCH_OUT:-$root/bench-out}"
NODES="${NODES:-2}" WORKERS="${WORKERS:-1}" MEMBERS="${MEMBERS:-1000}" RATE="${RATE:-100}"
DURATION="${DURATION:-3}" SIZE="${SIZE:-64}" REPS="${REPS:-3}" WARMUP="${WARMUP:-1}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes) NODES=$2 ;; --workers) WORKERS=$2 ;; --members) MEMBERS=$2 ;;
    --rate) RATE=$2 ;; --duration) DURATION=$2 ;; --size) SIZE=$2 ;; --reps) REPS=$2 ;;
    --warmup) WARMUP=$2 ;; --client-threads) CLIENT_THREADS=$2 ;;
    *) sed -n '2,3p' "$0" >&2; exit 2 ;;
    esac
    [ $# -ge 2 ] || { echo "cluster.sh: $1 needs a value" >&2; exit 2; }
    shift 2
done
for v in NODES WORKERS MEMBERS RATE REPS CLIENT_THREADS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "cluster.sh: $v must be a positive integer" >&2; exit 2; }
done
[ "$NODES" -le 32 ] || { echo "cluster.sh: at most 32 nodes" >&2; exit 2; }
[ "$MEMBERS" -ge 2 ] || { echo "cluster.sh: at least 2 members" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "cluster.sh: redis-server not installed" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cmake --build "$build" --target roomcast rcbench -j2 >/dev/null || { log "build failed"; exit 1; }
rcbench="$build/tests/bench/rcbench"
tmp=$(mktemp -d)
mkdir -p "$out"
: >"$out/cluster.jsonl"

# ---- pinning ----------------------------------------------------------------
ncpu=$(nproc)
pool=$((ncpu - CLIENT_THREADS))
if [ "${RC_CLUSTER_PIN:-1}" = 1 ] && [ "$pool" -ge 1 ] && command -v taskset >/dev/null; then
    client_cpus="$pool-$((ncpu - 1))"
else
    [ "${RC_CLUSTER_PIN:-1}" = 1 ] && log "fewer CPUs than client threads + 1 (or no taskset): no pinning"
    pool=0
fi
cpus_of() { # first count: W CPUs of the pool from `first`, wrapping
    local i l=
    for i in $(seq 0 $(($2 - 1))); do l="$l${l:+,}$((($1 + i) % pool))"; done
    echo "$l"
}

# ---- processes ----------------------------------------------------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
trap 'cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port pid
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

start_redis() {
    RPORT=$(free_port)
    local pfx=()
    [ "$pool" -ge 1 ] && pfx=(taskset -c "$(cpus_of $((NODES * WORKERS)) 1)")
    "${pfx[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$tmp" --daemonize no --loglevel warning >"$tmp/redis.log" 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
    wait_port "$RPORT" "$RPID" || { log "redis-server did not start: $(tail -3 "$tmp/redis.log")"; return 1; }
}

# start_nodes count redis(0|1): sets NPORTS (comma list) and NPIDS (comma list)
start_nodes() {
    local n=$1 with_redis=$2 i port pfx extra
    NPORTS='' NPIDS=''
    for i in $(seq 0 $((n - 1))); do
        port=$(free_port)
        pfx=()
        [ "$pool" -ge 1 ] && pfx=(taskset -c "$(cpus_of $((i * WORKERS)) "$WORKERS")")
        extra=()
        [ "$with_redis" = 1 ] && extra=(--redis "redis://127.0.0.1:$RPORT/0" --cluster-node-id "bench-$i")
        "${pfx[@]}" "$build/roomcast" -s "$root/scripts/fanout.lua" \
            -b 127.0.0.1 -p "$port" -w "$WORKERS" --log-level warn "${extra[@]}" \
            >"$tmp/node-$with_redis-$i.log" 2>&1 &
        local pid=$!
        PIDS+=("$pid")
        wait_port "$port" "$pid" || { log "node $i did not start: $(tail -3 "$tmp/node-$with_redis-$i.log")"; return 1; }
        NPORTS="$NPORTS${NPORTS:+,}$port"
        NPIDS="$NPIDS${NPIDS:+,}$pid"
    done
}

bench() { # label extra-args...
    local label=$1
    shift
    local client=()
    [ "$pool" -ge 1 ] && client=(taskset -c "$client_cpus")
    # The room must be whole on every node before publishing: rcbench's
    # settle (0.3 s) and warm-up (WARMUP s, not measured) cover the joins.
    timeout $((60 + ${DURATION%.*} + ${WARMUP%.*})) "${client[@]}" "$rcbench" -q --json -S fanout \
        -c "$MEMBERS" -t "$CLIENT_THREADS" -r "$RATE" -s "$SIZE" -w "$WARMUP" -d "$DURATION" \
        --drain 2 -n 100000000 --label "$label" "$@" 2>>"$tmp/rcbench.log" |
        tee -a "$out/cluster.jsonl" >/dev/null
}

run_single() {
    start_nodes 1 0 || return 1
    bench "1 node" -p "$NPORTS" --server-pid "$NPIDS"
    cleanup
}

run_cluster() {
    start_redis || return 1
    start_nodes "$NODES" 1 || return 1
    bench "$NODES nodes + Redis" -p "$NPORTS" --server-pid "$NPIDS" --redis-pid "$RPID" \
        --redis-port "$RPORT"
    if grep -qiE "error|down" "$tmp"/node-1-*.log; then
        log "node logs name errors:"
        grep -hiE "error|down" "$tmp"/node-1-*.log | head -5 >&2
    fi
    cleanup
}

log "$NODES nodes x $WORKERS workers, $MEMBERS members, $RATE publishes/s of $SIZE B," \
    "$DURATION s (+$WARMUP s warm-up) x $REPS; $ncpu CPUs, pool $pool"
for r in $(seq 1 "$REPS"); do
    run_single || log "single-node run $r failed"
    run_cluster || { log "cluster run $r failed"; cleanup; }
done
[ -s "$out/cluster.jsonl" ] || { log "no results (see $tmp/rcbench.log)"; cat "$tmp/rcbench.log" >&2; exit 1; }

/usr/bin/python3 - "$out/cluster.jsonl" "$NODES" "$WORKERS" "$MEMBERS" "$RATE" "$SIZE" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
nodes, workers, members, rate, size = sys.argv[2:7]
def cols(r):
    red = r.get("redis")
    return [r["received_measured"], r["server"]["cpu_s"], r["server"]["per_cpu_s"],
            red["cpu_us_per_publish"] if red else None,
            red["commands_per_publish"] if red else None,
            r["latency_us"]["p99"] / 1000, r["latency_us"]["p50"] / 1000,
            100 * r["delivered_ratio"], r["skipped"]]
def fmt(v, f):
    return "-" if v is None else f % v
fs = ["%d", "%.2f", "%.0f", "%.1f", "%.2f", "%.2f", "%.2f", "%.2f", "%d"]
print(f"\none room, {members} members, {rate} publishes/s of {size} B; cluster: {nodes} nodes "
      f"x {workers} workers, members round-robin over them, publisher on the first\n")
print("| run | setup | deliveries | node CPU s | deliveries per node CPU-s | Redis CPU us/publish "
      "| commands/publish | p99 ms | p50 ms | delivered % | skipped |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
by = {}
for i, r in enumerate(rows):
    by.setdefault(r["target"], []).append(cols(r))
    print("| %d | %s | %s |" % (i // 2 + 1, r["target"], " | ".join(fmt(v, f) for v, f in zip(cols(r), fs))))
med = {}
for t, cs in by.items():
    med[t] = [None if any(c[k] is None for c in cs) else statistics.median(c[k] for c in cs)
              for k in range(len(fs))]
    print("| median | %s | %s |" % (t, " | ".join(fmt(v, f) for v, f in zip(med[t], fs))))
single = [t for t in med if t == "1 node"]
clus = [t for t in med if t != "1 node"]
if single and clus:
    s, c = med[single[0]], med[clus[0]]
    print("\ncluster / one node (medians): deliveries per node CPU-s %.2fx, p99 %.2fx"
          % (c[2] / s[2] if s[2] else float("nan"), c[5] / s[5] if s[5] else float("nan")))
PY
