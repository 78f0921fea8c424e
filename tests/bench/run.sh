#!/usr/bin/env bash
# run.sh quick|full|deflate - benchmarks roomcast against its peer servers.
#
# Installs what is missing first (deps.sh; `make bench-deps` does the same
# before `make bench` configures anything), builds roomcast and rcbench in
# $RC_BENCH_BUILD (default build/), builds the compiled peers outside CMake
# (peers/build.sh: detected afresh on every run), then runs every scenario
# against roomcast and each available peer, one server at a time, the server
# pinned to CPU 0 and rcbench to CPU 1. Every rcbench run has a warm-up
# before it measures; `full` repeats the headline rows 3 times and reports the
# median. Writes bench-out/results.json, bench-out/results.md and
# bench-out/plots/*.png. The time budget (quick 55 s, full 800 s) starts after
# the installs and builds: rows that would pass it are skipped with a message.
# A peer that cannot be had is named in its table column with the reason, and
# the summary line names the command that fixes it. deflate runs only the
# permessage-deflate rows (idle cost, JSON fan-out plain and compressed) for
# roomcast and node, in under 2 minutes; full includes them.
#
# full also runs the cluster pair (cluster.sh --reps 1) and appends its table.
#
# Issue 14's goals 3 and 4 have rows of their own (report.py folds them into
# a "Goals (issue 14)" section): fanout-1000-r5000 and fanout-1000-r1600 for
# every server, and roomcast at 1600/s with one and two workers, pinned to
# CPU 0 and unpinned, run rep by rep in turn (paired rows, below).
#
# The paired rows include an A/A control, fanout-1000-r1600-w1b: one worker
# again, pinned, run next to the w1 run; report.py shows w1b / w1 as the
# noise band of the measurement (not a goal).
#
# Steal: rcbench reports the time the hypervisor stole from the server's CPUs
# over the measure window. A paired run whose server-CPU steal is over
# RC_BENCH_STEAL_MAX percent (default 1) is set aside (bench-out/rejected/)
# and run again at once, at most RC_BENCH_STEAL_RERUNS extra runs per row
# (default 3; 0: never); once they are spent the last run stays, marked.
# Every re-run goes to bench-out/steal.tsv and the report counts them.
#
# RC_BENCH_ROWS=REGEX runs only the rows whose id matches (bash =~, e.g.
# RC_BENCH_ROWS='^fanout-1000-r1600'); the JWT, cluster and history stall
# sections run only when "jwt", "cluster" or "history-stall" matches it.
# RC_BENCH_DRY=1 runs nothing: the plan goes to bench-out/plan.txt.
#
# Only 127.0.0.1; every load run is bounded in time and count.
set -u
mode="${1:-quick}"
case "$mode" in quick | full | deflate) ;; *)
    echo "usage: $0 quick|full|deflate" >&2
    exit 2
    ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${RC_BENCH_BUILD:-$root/build}"
out="${RC_BENCH_OUT:-$root/bench-out}"
servers="${RC_BENCH_SERVERS:-roomcast node gorilla lws}"
# full: 740 s until session 7, + 10 s for the A/A row (3 runs of about
# 3.3 s) and + 50 s for the most steal re-runs the paired rows can take
# (5 rows x 3); a quiet machine takes neither (session 8).
case "$mode" in quick) budget=55 ;; deflate) budget=115 ;; *) budget=800 ;; esac
steal_max="${RC_BENCH_STEAL_MAX:-1}"
steal_reruns="${RC_BENCH_STEAL_RERUNS:-3}"
[[ $steal_max =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    { echo "run.sh: RC_BENCH_STEAL_MAX='$steal_max': a percentage is required (e.g. 1)" >&2; exit 2; }
if ! [[ $steal_reruns =~ ^[0-9]+$ ]] || [ "$steal_reruns" -gt 20 ]; then
    echo "run.sh: RC_BENCH_STEAL_RERUNS='$steal_reruns': 0 to 20 is required" >&2
    exit 2
fi
[ "$mode" = deflate ] && servers="${RC_BENCH_SERVERS:-roomcast node}"

log() { echo "run.sh: $*" >&2; }

# RC_BENCH_DRY=1: the plan only. Nothing is installed, built, started or run;
# every server start and rcbench run goes, in order, to $out/plan.txt
# (run_plan_test.py checks the row machinery on it).
dry="${RC_BENCH_DRY:-0}"

# ---- dependencies and builds (not counted in the time budget) -------------------
# make bench / bench-quick ran deps.sh already (bench-deps) and say so.
[ "${RC_BENCH_DEPS_DONE:-0}" = 1 ] || [ "$dry" = 1 ] || bash "$here/deps.sh"
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ "$dry" = 0 ]; then
    if [ ! -f "$build/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$build" -DRC_BENCH=ON >"$out.cmake.log" 2>&1 || true
    fi
    if ! cmake --build "$build" --target rcbench -j2 >/dev/null 2>&1; then
        [ -x "$build/tests/bench/rcbench" ] || {
            log "cannot build rcbench in $build"
            exit 1
        }
        log "rcbench did not build; using the existing binary"
    fi
    cmake --build "$build" --target roomcast -j2 >/dev/null 2>&1 ||
        log "roomcast did not build; using the existing binary if there is one"
    cmake --build "$build" --target jwtbench -j2 >/dev/null 2>&1 || true
fi

rcbench="$build/tests/bench/rcbench"
mkdir -p "$out/raw" "$out/logs" "$out/plots" "$out/rejected"
rm -f "$out"/raw/*.json "$out"/rejected/*.json "$out/plan.txt"
: >"$out/steal.tsv"
: >"$out/skipped-rows.tsv"

# The peers: detected and built afresh on every run, never cached.
# shellcheck disable=SC2086
[ "$dry" = 1 ] || bash "$here/peers/build.sh" "$build" $servers
peer_status() { # name field(2: ok|missing, 3: path|why)
    awk -F'\t' -v n="$1" -v f="$2" '$1 == n { print $f }' "$build/bench-peers/status"
}
gorilla_bin="$build/bench-peers/peer_gorilla"
lws_bin="$build/bench-peers/peer_lws"
# Why a server has no numbers: "server<TAB>why" lines for report.py.
: >"$out/skipped.tsv"
missing_peers=()
skip() { # server why
    log "$1: $2, skipped"
    grep -q "^$1	" "$out/skipped.tsv" || printf '%s\t%s\n' "$1" "$2" >>"$out/skipped.tsv"
}
t_start=$SECONDS

fix_command() {
    if [ "$(id -u)" = 0 ]; then echo "make bench-deps"; else echo "sudo make bench-deps"; fi
}
echo "fix: $(fix_command)" >"$out/fix.txt"

# ---- pinning --------------------------------------------------------------------
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    pin_server=(taskset -c 0)
    pin_client=(taskset -c 1)
else
    log "fewer than 2 CPUs: no pinning"
    pin_server=()
    pin_client=()
fi

# ---- servers --------------------------------------------------------------------
available() { # name mode
    [ "$dry" = 1 ] && return 0
    case "$1" in
    roomcast)
        [ -x "$build/roomcast" ] || { skip roomcast "$build/roomcast missing"; return 1; }
        if [ "$2" = fanout ] && [ ! -f "$root/scripts/fanout.lua" ]; then
            log "roomcast: scripts/fanout.lua missing, fanout rows skipped"
            return 1
        fi
        ;;
    node | gorilla | lws)
        if [ "$(peer_status "$1" 2)" != ok ]; then
            skip "$1" "$(peer_status "$1" 3)"
            missing_peers+=("$1")
            return 1
        fi
        ;;
    *) log "unknown server $1"; return 1 ;;
    esac
}

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$SPID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

SPID=
setup= # what the running server was started as: "name mode pin flags..."
next_port=19400
jwt_conf=
# start_server name mode [pin [flags...]]: pin "no" runs the server unpinned
# (default: pin_server); flags go on the end of its command line (a later
# roomcast flag wins over an earlier one, e.g. -w 2 over the -w 1 here).
start_server() {
    local name=$1 m=$2 pin=${3:-yes} cmd pinned=("${pin_server[@]}")
    shift 2
    [ $# -gt 0 ] && shift
    [ "$pin" = no ] && pinned=()
    PORT=$next_port
    next_port=$((next_port + 1))
    case "$name" in
    roomcast)
        if [ "$m" = echo ]; then
            cmd=("$build/roomcast" --echo -b 127.0.0.1 -p "$PORT" -w 1 --log-level warn)
        elif [ "$m" = lua ]; then
            cmd=("$build/roomcast" -s "$root/scripts/chat.lua" -b 127.0.0.1 -p "$PORT" -w 1
                --log-level warn)
        elif [ "$m" = jwt ]; then
            cmd=("$build/roomcast" -s "$root/scripts/chat.lua" -b 127.0.0.1 -p "$PORT" -w 1
                --log-level warn --plugin "jwt_auth=$root/plugins/jwt_auth.lua=$jwt_conf")
        else
            cmd=("$build/roomcast" -s "$root/scripts/fanout.lua" -b 127.0.0.1 -p "$PORT" -w 1
                --log-level warn)
        fi
        ;;
    node) cmd=(node "$here/peers/node_ws.js" "$m" "$PORT") ;;
    gorilla) cmd=("$gorilla_bin" "$m" "$PORT") ;;
    lws) cmd=("$lws_bin" "$m" "$PORT") ;;
    esac
    cmd+=("$@")
    if [ "$dry" = 1 ]; then
        echo "start $name $m pin=$pin: ${pinned[*]} ${cmd[*]}" >>"$out/plan.txt"
        SPID=dry setup="$name $m $pin $*" fresh=1
        return 0
    fi
    "${pinned[@]}" "${cmd[@]}" >"$out/logs/$name-$m.log" 2>&1 &
    SPID=$!
    setup="$name $m $pin $*"
    fresh=1
    if ! wait_port "$PORT"; then
        log "$name ($m) did not start; see $out/logs/$name-$m.log"
        stop_server
        return 1
    fi
}

stop_server() {
    [ -n "$SPID" ] || return 0
    if [ "$SPID" = dry ]; then
        SPID='' setup=''
        return 0
    fi
    kill "$SPID" 2>/dev/null
    for _ in $(seq 1 40); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
    setup=
}
trap stop_server EXIT

# ---- rows -------------------------------------------------------------------------
# Each row: "id reps [option...] rcbench-args...". reps is the count in full
# mode (quick: 1). The options, before the first rcbench argument, give a row
# a server of its own:
#   servers=a,b  only these servers run the row (default: every server)
#   pin=no       the server unpinned (default: pinned like every row, pin_server)
#   flags=a,b    words added to the server's command line (roomcast: a later
#                flag wins, so flags=-w,2 runs two workers)
#   fresh=yes    every run on a server of its own, started for it and stopped
#                after it (a peer that cannot keep up still holds the run's
#                backlog; idle rows always start one, for its memory)
# A row whose pin or flags differ from the running server's restarts it.
if [ "$mode" = deflate ]; then
    echo_rows=(
        "idle-1000 1 -S idle -c 1000 -d 0.3"
        "idle-pmd-1000 1 -S idle -c 1000 -d 0.3 --deflate"
    )
    fanout_rows=()
    paired_rows=()
elif [ "$mode" = quick ]; then
    W=(-w 0.2 -d 0.5 --drain 0.5)
    # A second of measure for the CPU-second ratio: /proc counts 10 ms ticks.
    G=(-S fanout -c 1000 -r 1600 -s 64 -w 0.2 -d 1 --drain 0.5)
    echo_rows=(
        "idle-1000 1 -S idle -c 1000 -d 0.3"
        "idle-pmd-1000 1 -S idle -c 1000 -d 0.3 --deflate"
        "storm-1000 1 -S storm -c 1000"
        "echo-32-d1 1 -S echo -c 50 -s 32 -D 1 ${W[*]}"
        "echo-32-d16 1 -S echo -c 50 -s 32 -D 16 ${W[*]}"
        "echo-1k-d1 1 -S echo -c 50 -s 1024 -D 1 ${W[*]}"
    )
    fanout_rows=(
        "fanout-1000-r100 1 -S fanout -c 1000 -r 100 ${W[*]}"
        "fanout-1000-r5000 1 servers=roomcast fresh=yes -S fanout -c 1000 -r 5000 -s 64 ${W[*]}"
        "n2-100 1 -S n2 -c 100 -r 10 ${W[*]}"
        "slow-1000 1 -S slow -c 1000 -r 100 ${W[*]}"
    )
    # Goal 4, pinned only: one run each.
    paired_rows=(
        "fanout-1000-r1600-w1 1 servers=roomcast fresh=yes ${G[*]}"
        "fanout-1000-r1600-w2 1 servers=roomcast fresh=yes flags=-w,2 ${G[*]}"
    )
else
    W=(-w 0.5 -d 2 --drain 1)
    G=(-S fanout -c 1000 -r 1600 -s 64 "${W[@]}")
    echo_rows=(
        "idle-10000 3 -S idle -c 10000 -d 1"
        "idle-pmd-10000 3 -S idle -c 10000 -d 1 --deflate"
        "storm-10000 3 -S storm -c 10000"
        "echo-32-d1 3 -S echo -c 50 -s 32 -D 1 ${W[*]}"
        "echo-32-d16 3 -S echo -c 50 -s 32 -D 16 ${W[*]}"
        "echo-1k-d1 3 -S echo -c 50 -s 1024 -D 1 ${W[*]}"
        "echo-1k-d16 3 -S echo -c 50 -s 1024 -D 16 ${W[*]}"
    )
    # fanout-1000-r1600 and -r5000: issue 14's goal rates, 64-byte messages
    # as the issue measured them (fanout_syscalls.sh); a peer that cannot keep
    # up shows it in the detail table (delivered, p99), and its backlog (node:
    # over 1 GB) goes with its server after every run.
    fanout_rows=(
        "fanout-1000-r100 3 -S fanout -c 1000 -r 100 ${W[*]}"
        "fanout-1000-r10 1 -S fanout -c 1000 -r 10 ${W[*]}"
        "fanout-1000-r20 1 -S fanout -c 1000 -r 20 ${W[*]}"
        "fanout-1000-r50 1 -S fanout -c 1000 -r 50 ${W[*]}"
        "fanout-1000-r200 1 -S fanout -c 1000 -r 200 ${W[*]}"
        "fanout-1000-r1600 3 fresh=yes -S fanout -c 1000 -r 1600 -s 64 ${W[*]}"
        "fanout-1000-r5000 3 fresh=yes -S fanout -c 1000 -r 5000 -s 64 ${W[*]}"
        "fanout-10-r2000 1 -S fanout -c 10 -r 2000 ${W[*]}"
        "fanout-100-r200 1 -S fanout -c 100 -r 200 ${W[*]}"
        "fanout-5000-r4 1 -S fanout -c 5000 -r 4 ${W[*]}"
        "n2-100 3 -S n2 -c 100 -r 10 ${W[*]}"
        "slow-1000 3 -S slow -c 1000 -r 100 -w 0.5 -d 3 --drain 1"
    )
    # Goal 4: one worker against two at 1600/s, with the server on CPU 0 (the
    # issue's per-core protocol) and unpinned (how its 1.37M vs 1.59M was
    # measured); rcbench stays on CPU 1.
    # fanout-1000-r1600-w1b, just before -w1, is the A/A control: the same
    # setup as -w1, so w1b / w1 is what two runs of one thing differ by.
    paired_rows=(
        "fanout-1000-r1600-w1b 3 servers=roomcast fresh=yes ${G[*]}"
        "fanout-1000-r1600-w1 3 servers=roomcast fresh=yes ${G[*]}"
        "fanout-1000-r1600-w2 3 servers=roomcast fresh=yes flags=-w,2 ${G[*]}"
        "fanout-1000-r1600-w1-free 3 servers=roomcast fresh=yes pin=no ${G[*]}"
        "fanout-1000-r1600-w2-free 3 servers=roomcast fresh=yes pin=no flags=-w,2 ${G[*]}"
    )
fi

# permessage-deflate (RFC 7692): 1 room x 1000 at 200 publishes/s of 1 KiB JSON
# text, everyone on deflate, against the same row plain; the node peer runs
# the deflate row with ws's perMessageDeflate on (node_ws.js fanout-deflate).
# A second pair at 20 publishes/s, a rate node's ws can keep up with.
PW=(-w 1 -d 3 --drain 1)
json_rows=("fanout-json-1000-r200 1 -S fanout -c 1000 -r 200 -s 1024 --text --payload json ${PW[*]}"
    "fanout-json-1000-r20 1 -S fanout -c 1000 -r 20 -s 1024 --text --payload json ${PW[*]}")
pmd_rows=("fanout-pmd-1000-r200 1 -S fanout -c 1000 -r 200 -s 1024 --text --payload json --deflate ${PW[*]}"
    "fanout-pmd-1000-r20 1 -S fanout -c 1000 -r 20 -s 1024 --text --payload json --deflate ${PW[*]}")
[ "$mode" = quick ] && json_rows=() pmd_rows=()

parse_row() { # row -> row_id row_reps row_servers row_pin row_fresh row_flags[] row_args[]
    local words
    read -r -a words <<<"$1"
    row_id=${words[0]} row_reps=${words[1]} row_servers='' row_pin=yes row_fresh=no row_flags=()
    words=("${words[@]:2}")
    while [ "${#words[@]}" -gt 0 ] && [[ ${words[0]} != -* ]]; do
        case ${words[0]} in
        servers=*) row_servers=${words[0]#servers=} ;;
        pin=yes | pin=no) row_pin=${words[0]#pin=} ;;
        fresh=yes | fresh=no) row_fresh=${words[0]#fresh=} ;;
        flags=*) IFS=, read -r -a row_flags <<<"${words[0]#flags=}" ;;
        *)
            log "row $row_id: unknown option ${words[0]}" \
                "(servers=, pin=yes|no, flags=, fresh=yes|no)"
            return 1
            ;;
        esac
        words=("${words[@]:1}")
    done
    row_args=("${words[@]}")
}
row_for() { # server row: parse_row, true if the row runs on the server
    parse_row "$2" && { [ -z "$row_servers" ] || [[ ",$row_servers," == *",$1,"* ]]; }
}
any_row_for() { # server rows...: does any of the rows run on the server?
    local name=$1 row
    shift
    for row in "$@"; do
        row_for "$name" "$row" && return 0
    done
    return 1
}

# RC_BENCH_ROWS: only the rows it matches.
wanted() { [ -z "${RC_BENCH_ROWS:-}" ] || [[ $1 =~ $RC_BENCH_ROWS ]]; }
if [ -n "${RC_BENCH_ROWS:-}" ]; then
    [[ x =~ $RC_BENCH_ROWS ]]
    [ $? -eq 2 ] && { log "RC_BENCH_ROWS: bad regex '$RC_BENCH_ROWS'"; exit 2; }
    log "RC_BENCH_ROWS='$RC_BENCH_ROWS': only the rows it matches"
fi
keep_wanted() { # array name: drops the rows RC_BENCH_ROWS does not match
    local -n rows_ref=$1
    local kept=() row
    for row in "${rows_ref[@]}"; do
        wanted "${row%% *}" && kept+=("$row")
    done
    rows_ref=("${kept[@]}")
}
for a in echo_rows fanout_rows paired_rows json_rows pmd_rows; do keep_wanted "$a"; done

# Every planned row, so the table lists it even when no server could run it:
# "id<TAB>servers (empty: all)<TAB>pin<TAB>server flags" for report.py.
for row in "${echo_rows[@]}" "${fanout_rows[@]}" "${paired_rows[@]}" "${json_rows[@]}" \
    "${pmd_rows[@]}"; do
    parse_row "$row" &&
        printf '%s\t%s\t%s\t%s\n' "$row_id" "$row_servers" "$row_pin" "${row_flags[*]}"
done >"$out/rows.txt"

run_one() { # name mode rep: one run of the row parse_row read last
    local name=$1 m=$2 r=$3
    if [ $((SECONDS - t_start)) -ge "$budget" ]; then
        log "time budget (${budget}s) spent: $name $row_id run $r skipped"
        printf '%s\t%s\ttime budget\n' "$name" "$row_id" >>"$out/skipped-rows.tsv"
        return 0
    fi
    # Memory per idle connection needs a server that has never held
    # connections: malloc keeps what earlier runs freed.
    if [ "$setup" != "$name $m $row_pin ${row_flags[*]}" ] ||
        { { [ "${row_id%%-*}" = idle ] || [ "$row_fresh" = yes ]; } && [ "$fresh" = 0 ]; }; then
        stop_server
        start_server "$name" "$m" "$row_pin" "${row_flags[@]}" || return 1
    fi
    if [ "$dry" = 1 ]; then
        echo "run $name $row_id $r: ${pin_client[*]} rcbench ${row_args[*]}" >>"$out/plan.txt"
    else
        timeout 60 "${pin_client[@]}" "$rcbench" -q --json -n 100000000 --label "$name" \
            --server-pid "$SPID" -p "$PORT" "${row_args[@]}" \
            >"$out/raw/$name.$row_id.$r.json" 2>>"$out/logs/rcbench-$name.log" ||
            log "$name $row_id run $r: rcbench exited $? (see $out/logs/rcbench-$name.log)"
        [ -s "$out/raw/$name.$row_id.$r.json" ] || rm -f "$out/raw/$name.$row_id.$r.json"
    fi
    fresh=0
    [ "$row_fresh" = yes ] && stop_server
    return 0
}

run_rows() { # server mode rows...: each row's repeats one after another
    local name=$1 m=$2 row r
    shift 2
    for row in "$@"; do
        row_for "$name" "$row" || continue
        [ "$mode" != full ] && row_reps=1
        for r in $(seq 1 "$row_reps"); do
            run_one "$name" "$m" "$r" || return
        done
    done
}

# The server-CPU steal (%) of the run of the row parse_row read last: from
# its JSON, or in a dry run from RC_BENCH_DRY_STEAL ("ROW.REP.TRY=PCT ...",
# TRY 0 the first run; 0 when not named). Empty when the run left no JSON.
run_steal() { # name rep try
    local name=$1 r=$2 try=$3 f="$out/raw/$1.$row_id.$2.json" w
    if [ "$dry" = 1 ]; then
        for w in ${RC_BENCH_DRY_STEAL:-}; do
            [ "${w%%=*}" = "$row_id.$r.$try" ] && { echo "${w#*=}"; return; }
        done
        echo 0
        return
    fi
    [ -s "$f" ] && sed -n 's/.*"steal":{"server_pct":\(-\{0,1\}[0-9.]*\).*/\1/p' "$f"
}
over_steal() { awk -v a="$1" -v b="$steal_max" 'BEGIN { exit !(a + 0 > b + 0) }'; }

# A run with more server-CPU steal than RC_BENCH_STEAL_MAX is set aside and
# run again at once (next to its pair still), at most RC_BENCH_STEAL_RERUNS
# extra runs per row; every decision goes to steal.tsv:
# "server<TAB>row<TAB>rep<TAB>try<TAB>steal %<TAB>replaced|kept".
declare -A steal_used=()
steal_check() { # name mode rep: after run_one of the row parse_row read last
    local name=$1 m=$2 r=$3 try=0 st
    st=$(run_steal "$name" "$r" 0)
    while [ -n "$st" ] && over_steal "$st"; do
        if [ "${steal_used[$row_id]:-0}" -ge "$steal_reruns" ] ||
            [ $((SECONDS - t_start)) -ge "$budget" ]; then
            log "$name $row_id run $r: steal $st % > $steal_max %, no re-run left for the row" \
                "(or the time budget spent); kept"
            printf '%s\t%s\t%s\t%s\t%s\tkept\n' "$name" "$row_id" "$r" "$try" "$st" \
                >>"$out/steal.tsv"
            [ "$dry" = 1 ] && echo "kept $name $row_id $r: steal $st % > $steal_max %" >>"$out/plan.txt"
            return 0
        fi
        steal_used[$row_id]=$((${steal_used[$row_id]:-0} + 1))
        try=$((try + 1))
        log "$name $row_id run $r: steal $st % > $steal_max % on the server's CPUs; run again ($try)"
        printf '%s\t%s\t%s\t%s\t%s\treplaced\n' "$name" "$row_id" "$r" "$((try - 1))" "$st" \
            >>"$out/steal.tsv"
        if [ "$dry" = 1 ]; then
            echo "rerun $name $row_id $r: steal $st % > $steal_max %" >>"$out/plan.txt"
        else
            mv "$out/raw/$name.$row_id.$r.json" "$out/rejected/$name.$row_id.$r.try$((try - 1)).json"
        fi
        run_one "$name" "$m" "$r" || return 1
        st=$(run_steal "$name" "$r" "$try")
    done
    return 0
}

# Paired rows compare with each other (one worker against two): run 1 of
# every row, then run 2 of every row, ..., so the machine's drift during the
# block falls on all of them alike (each on a server of its own: fresh=yes).
# A run with steal on the server's CPUs is run again (steal_check).
run_paired() { # server mode rows...
    local name=$1 m=$2 row r max=1
    shift 2
    for row in "$@"; do
        parse_row "$row" && [ "$mode" = full ] && [ "$row_reps" -gt "$max" ] && max=$row_reps
    done
    for r in $(seq 1 "$max"); do
        for row in "$@"; do
            row_for "$name" "$row" || continue
            [ "$mode" != full ] && row_reps=1
            [ "$r" -le "$row_reps" ] || continue
            run_one "$name" "$m" "$r" || return
            steal_check "$name" "$m" "$r" || return
        done
    done
}

# roomcast's fan-out needs the Lua bridge and scripts/fanout.lua: probe that a
# message reaches every member before timing anything.
fanout_works() {
    local probe
    [ "$dry" = 1 ] && return 0
    probe=$(timeout 20 "$rcbench" -q --json -S fanout -c 3 -n 5 -r 50 -w 0 -d 1 -p "$PORT" 2>/dev/null)
    echo "$probe" | grep -q '"delivered_ratio":1.0'
}

for name in $servers; do
    if any_row_for "$name" "${echo_rows[@]}" && available "$name" echo &&
        start_server "$name" echo; then
        log "$name: echo rows"
        run_rows "$name" echo "${echo_rows[@]}"
        stop_server
    fi
    if any_row_for "$name" "${fanout_rows[@]}" "${paired_rows[@]}" && available "$name" fanout &&
        start_server "$name" fanout; then
        if [ "$name" = roomcast ] && ! fanout_works; then
            log "roomcast: fanout.lua does not deliver to every member yet; fanout rows skipped"
        else
            log "$name: fanout rows"
            run_rows "$name" fanout "${fanout_rows[@]}"
            if any_row_for "$name" "${paired_rows[@]}"; then
                log "$name: paired fanout rows (run by run in turn)"
                run_paired "$name" fanout "${paired_rows[@]}"
            fi
        fi
        stop_server
    fi
done

for name in $servers; do
    case "$name" in roomcast | node) ;; *) continue ;; esac
    if any_row_for "$name" "${json_rows[@]}" || { [ "$name" = roomcast ] && [ "${#pmd_rows[@]}" -gt 0 ]; }; then
        available "$name" fanout || continue
        if start_server "$name" fanout; then
            log "$name: plain JSON fan-out rows"
            run_rows "$name" fanout "${json_rows[@]}"
            [ "$name" = roomcast ] && run_rows "$name" fanout "${pmd_rows[@]}"
            stop_server
        fi
    fi
    if [ "$name" = node ] && [ "${#pmd_rows[@]}" -gt 0 ] && available node fanout &&
        start_server node fanout-deflate; then
        log "node: permessage-deflate fan-out rows"
        run_rows node fanout-deflate "${pmd_rows[@]}"
        stop_server
    fi
done

if [ "$dry" = 1 ]; then
    log "dry run: the plan is in $out/plan.txt"
    exit 0
fi

# ---- JWT ----------------------------------------------------------------------------
# Verifications per second per core (jwtbench: jwt_verify against the bare
# OpenSSL call, its peer in the same run), then the upgrade storm through
# scripts/chat.lua with and without plugins/jwt_auth checking an RS256 token
# in ?token=: the difference is what verification costs an upgrade.
jwtbench="$build/tests/bench/jwtbench"
if [ "$mode" != deflate ] && [[ " $servers " == *" roomcast "* ]] && [ -x "$jwtbench" ] && wanted jwt; then
    reps=3 secs=2
    [ "$mode" = quick ] && reps=1 secs=0.5
    log "roomcast: jwt verification rows"
    for r in $(seq 1 "$reps"); do
        "${pin_client[@]}" "$jwtbench" -d "$secs" 2>>"$out/logs/jwtbench.log" |
            while read -r line; do
                alg=$(sed -n 's/.*"alg":"\([A-Za-z0-9]*\)".*/\1/p' <<<"$line")
                [ -n "$alg" ] && echo "$line" >"$out/raw/roomcast.jwt-${alg,,}.$r.json"
            done
    done
    token=$("$jwtbench" --mint "$out" 2>>"$out/logs/jwtbench.log")
    jwt_conf="{\"algorithms\":[\"RS256\"],\"public_key\":\"$out/jwt-rs256.pem\",\"auth_timeout\":0}"
    if [ "$mode" = quick ]; then c=1000 reps=1; else c=10000 reps=3; fi
    if [ -n "$token" ] && available roomcast lua; then
        if start_server roomcast lua; then
            run_rows roomcast lua "storm-$c-lua $reps -S storm -c $c"
            stop_server
        fi
        if start_server roomcast jwt; then
            run_rows roomcast jwt "storm-$c-rs256 $reps -S storm -c $c -P /ws?token=$token"
            stop_server
        fi
    fi
fi

# ---- cluster ----------------------------------------------------------------------
# full: one room over 2 nodes and a redis-server against the same room on one
# node (cluster.sh, one pair, about 20 s); its table goes under results.md.
rm -f "$out/cluster.md"
if [ "$mode" = full ] && [[ " $servers " == *" roomcast "* ]] && wanted cluster; then
    if ! command -v redis-server >/dev/null; then
        log "redis-server missing: cluster rows skipped"
    elif [ $((SECONDS - t_start + 30)) -ge "$budget" ]; then
        log "time budget (${budget}s) spent: cluster rows skipped"
    else
        log "roomcast: cluster rows (2 nodes + Redis against 1 node)"
        RC_BENCH_BUILD="$build" RC_BENCH_OUT="$out" bash "$here/cluster.sh" --reps 1 \
            >"$out/cluster.md" 2>>"$out/logs/cluster.log" || log "cluster.sh failed (see $out/logs/cluster.log)"
    fi
fi

# ---- history stall -----------------------------------------------------------------
# full: a large history read (1000 messages of 2 KB, SQLite) against another
# client's round trips (history_stall.py, one run per size, about 15 s each);
# issue 10's figure: the p99 while reading within 2x of the quiet p99.
rm -f "$out/history_stall.md"
if [ "$mode" = full ] && [[ " $servers " == *" roomcast "* ]] && wanted history-stall; then
    if [ $((SECONDS - t_start + 40)) -ge "$budget" ]; then
        log "time budget (${budget}s) spent: history stall rows skipped"
    else
        log "roomcast: history stall (200 B and 2 KB messages)"
        {
            echo "| message size | quiet p99 (before, after) ms | p99 while reading ms | ratio | reads | worker ms per read |"
            echo "|---|---|---|---|---|---|"
            for size in 200 2000; do
                /usr/bin/python3 "$here/history_stall.py" --build "$build" --size "$size" 2>>"$out/logs/history_stall.log" |
                    tail -1 | /usr/bin/python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
print("| %d B | %s, %s | %s | %s | %d | %s |" % (r["size"], r["p99_ms_alone"], r["p99_ms_alone_after"],
      r["p99_ms_reading"], r["p99_ratio"], r["reads_during"], r.get("cpu_ms_per_read_rc_worker0", "-")))' ||
                    echo "| $size B | failed (see logs/history_stall.log) | | | | |"
            done
        } >"$out/history_stall.md"
    fi
fi

{
    echo "mode: $mode"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cores: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
    echo "kernel: $(uname -sr)"
    echo "elapsed_s: $((SECONDS - t_start))"
    echo "steal_max_pct: $steal_max"
    echo "steal_reruns: $steal_reruns"
} >"$out/meta.txt"
/usr/bin/python3 "$here/report.py" "$out" || log "report failed"
if [ -s "$out/cluster.md" ] && [ -f "$out/results.md" ]; then
    printf '\n## Cluster (tests/bench/cluster.sh)\n' >>"$out/results.md"
    cat "$out/cluster.md" >>"$out/results.md"
fi
if [ -s "$out/history_stall.md" ] && [ -f "$out/results.md" ]; then
    printf '\n## Large history read against other clients (tests/bench/history_stall.py)\n' >>"$out/results.md"
    cat "$out/history_stall.md" >>"$out/results.md"
fi
# available() runs twice per server (echo, fanout): name each missing peer once.
mapfile -t missing_peers < <(printf '%s\n' "${missing_peers[@]}" | awk 'NF && !seen[$0]++')
if [ "${#missing_peers[@]}" -gt 0 ]; then
    log "done in $((SECONDS - t_start)) s: $out/results.md; missing peers: ${missing_peers[*]} (see the table); to fix: $(fix_command)"
else
    log "done in $((SECONDS - t_start)) s: $out/results.md; every peer measured"
fi
