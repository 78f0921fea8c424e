#!/usr/bin/python3
"""report.py OUT - folds bench-out/raw/*.json (one rcbench --json line per run,
named SERVER.ROW.REP.json) into OUT/results.json, OUT/results.md and
OUT/plots/*.png (gnuplot). Medians over repeats, field by field.

OUT/rows.txt (run.sh) lists the planned rows, one a line: "id", optionally
followed by tab-separated fields: the servers that run it (comma list, empty:
all), the server's pinning (yes|no) and the server flags the row adds.
results.md carries a "Goals (issue 14)" section with the verdicts of goals 1,
3 and 4 against their targets (the constants below). Goal 4's verdict is the
median of the per-pair ratios (run N of -w2 over run N of -w1, run next to it
in time); the ratio of the two medians is shown beside it. The A/A row
(-w1b over -w1) is the noise band of that measurement, not a goal.

OUT/steal.tsv (run.sh) lists the paired runs set aside or kept with steal on
the server's CPUs over the threshold: "server row rep try steal% replaced|kept"
(threshold and re-run bound in meta.txt: steal_max_pct, steal_reruns)."""
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

SERVERS = ["roomcast", "node", "gorilla", "lws"]
PEERS = SERVERS[1:]

# Issue 14's targets, as the harness checks them.
IDLE_B_MAX = 250  # goal 1: server bytes per idle upgraded connection
DELIVERED_MIN = 0.999  # goal 3: delivered ratio at 5000 publishes/s
P99_US_MAX = 50000  # goal 3: p99 publish -> receive
W2_OVER_W1_MIN = 1.00  # goal 4: two workers / one, deliveries per server CPU-s
# Goal 4's rows on CPUs busy with other work over this share (steal.others_pct,
# the median of a row) get a warning: the per-CPU figure moves with the load.
OTHERS_WARN_PCT = 10.0
GOAL4_ROWS = ("fanout-1000-r1600-w1b", "fanout-1000-r1600-w1", "fanout-1000-r1600-w2",
              "fanout-1000-r1600-w1-free", "fanout-1000-r1600-w2-free")


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        elif isinstance(v, (int, float)):
            out[prefix + k] = v
    return out


def row_order(row):
    kind = row.split("-")[0]
    rank = ["idle", "storm", "echo", "fanout", "n2", "slow", "jwt"].index(kind)
    nums = [int(x) for x in re.findall(r"\d+", row)]
    return (rank, row.startswith("fanout-1000") is False, nums, row)


def key_metric(row):
    """(field, label, higher_is_better) that the ratio column compares."""
    if row.startswith("idle"):
        return "server.rss_per_conn_b", "server RSS B/conn", False
    if row.startswith("storm"):
        return "upgrades_per_s", "upgrades/s", True
    if row.startswith("jwt"):
        return "verify_per_s", "JWT verifications/s per core", True
    if row.startswith("echo"):
        return "server.per_cpu_s", "msgs per server CPU-s", True
    return "server.per_cpu_s", "deliveries per server CPU-s", True


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return f"{v:.{digits}f}"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}" if isinstance(v, float) else str(v)


def has_samples(run, key):
    """False for a latency percentile of a run that timed nothing (rcbench
    writes 0 for every percentile then: a server that delivered nothing in the
    measure window), so it is not a value for the median; likewise a steal
    figure rcbench could not read (-1)."""
    group, _, field = key.rpartition(".")
    if group == "steal" and field.endswith("_pct"):  # others_pct too
        return run.get(key, -1) >= 0  # -1: rcbench could not read /proc/stat
    return field == "count" or run.get(group + ".count", 1) > 0


def read_rows_txt(path):
    """rows.txt -> {row: (set of servers or None for all, pin, server flags)}."""
    planned = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if not parts[0].strip():
                continue
            parts += [""] * (4 - len(parts))
            servers = {x for x in parts[1].split(",") if x} or None
            planned[parts[0].strip()] = (servers, parts[2] or "yes", parts[3])
    return planned


def steal_cell(r):
    """ "server / client" steal % of a row's medians; "-" where rcbench had none
    (an older rcbench, or /proc/stat unreadable: -1)."""
    def one(k):
        v = r.get(k)
        return "-" if v is None or v < 0 else f"{v:.1f}"
    return f"{one('steal.server_pct')} / {one('steal.client_pct')}"


def others_cell(r):
    v = r.get("steal.others_pct")
    return "-" if v is None or v < 0 else f"{v:.1f}"


def verdict(ok):
    return "**PASS**" if ok else "**MISS**"


def pair_ratios(by_rep, two, one):
    """[(rep, ratio)] of run N of row two over run N of row one (roomcast's),
    the runs made next to each other in time; pairs without a per-CPU figure
    on both sides are left out."""
    ones = by_rep.get(one, {}).get("roomcast", {})
    twos = by_rep.get(two, {}).get("roomcast", {})
    out = []
    for n in sorted(set(ones) & set(twos), key=lambda k: str(k).zfill(9)):
        x, y = twos[n].get("server.per_cpu_s", 0), ones[n].get("server.per_cpu_s", 0)
        if x > 0 and y > 0:
            out.append((n, x / y))
    return out


def goals(results, by_rep, steal=None):
    """The "Goals (issue 14)" section: goals 1, 3 and 4 against their targets,
    from roomcast's rows. Goals 1 and 3 are judged on the medians, goal 4 on
    the median of its paired runs' ratios; the runs column shows every run.
    Goal 2 (instructions) is gated by ctest bench/callgrind_budget. steal:
    {"max": %, "reruns": n, "events": [(server, row, rep, try, %, verdict)]}."""
    md = ["\n## Goals (issue 14)\n"]
    md.append("Goals 1 and 3 are judged on the medians over the runs (the runs column lists "
              "each). Goal 4 is judged on the **median of the per-pair ratios**: run N of the "
              "two-worker row over run N of the one-worker row, the two run one after the "
              "other on fresh servers, so the machine's drift between runs (other load, the "
              "host's steal) falls on both sides of each ratio and cancels; the ratio of the "
              "two rows' medians, which mixes runs made minutes apart, is shown beside it but "
              "does not decide (it does only when the rows were not run in pairs). "
              "Goal 2 (instructions per echo and per delivery) is gated by "
              "`ctest -R bench/callgrind_budget`, not here.\n")
    md.append("| goal | target | row | measured | runs | status |")
    md.append("|---|---|---|---|---|---|")

    def rc(row):
        return results.get(row, {}).get("roomcast")

    def reps(row):
        return [v for _, v in sorted(by_rep.get(row, {}).get("roomcast", {}).items(),
                                     key=lambda kv: str(kv[0]).zfill(9))]

    # Goal 1: idle memory; quick mode has the 1000-connection row only.
    row = "idle-10000" if rc("idle-10000") else "idle-1000"
    r = rc(row)
    label = "1. idle memory per upgraded connection"
    target = f"<= {IDLE_B_MAX} B at 10 000 connections"
    if r and r.get("server.rss_per_conn_b") is not None:
        b = r["server.rss_per_conn_b"]
        each = ", ".join(fmt(x.get("server.rss_per_conn_b")) for x in reps(row))
        name = row if row == "idle-10000" else row + " (quick mode: 1000 connections)"
        md.append(f"| {label} | {target} | {name} | {fmt(b)} B/conn | {each} | "
                  f"{verdict(b <= IDLE_B_MAX)} |")
    else:
        md.append(f"| {label} | {target} | idle-10000 | not run | - | no data |")

    # Goal 3: 1 room x 1000 at 5000 publishes/s on one worker.
    row = "fanout-1000-r5000"
    r = rc(row)
    label = "3. fan-out 1 room x 1000 at 5000 publishes/s, one worker"
    target = f">= {DELIVERED_MIN * 100:.1f} % delivered, p99 <= {P99_US_MAX / 1000:.0f} ms"
    if r and r.get("delivered_ratio") is not None:
        # No p99 when nothing sent in the measure window arrived: a miss.
        d, p99 = r["delivered_ratio"], r.get("latency_us.p99")

        def p99_ms(v):
            return "-" if v is None else f"{v / 1000:.1f} ms"

        def meets(x):
            v = x.get("latency_us.p99") if has_samples(x, "latency_us.p99") else None
            return (x.get("delivered_ratio", 0) >= DELIVERED_MIN and v is not None
                    and v <= P99_US_MAX)
        each = reps(row)
        runs = ", ".join(f"{x.get('delivered_ratio', 0) * 100:.2f} % / " + p99_ms(
            x.get("latency_us.p99") if has_samples(x, "latency_us.p99") else None) for x in each)
        md.append(f"| {label} | {target} | {row} | {d * 100:.2f} % delivered, p99 "
                  f"{p99_ms(p99)} | {runs} ({sum(map(meets, each))} of {len(each)} meet both) | "
                  f"{verdict(d >= DELIVERED_MIN and p99 is not None and p99 <= P99_US_MAX)} |")
    else:
        md.append(f"| {label} | {target} | {row} | not run | - | no data |")

    # Goal 4: two workers against one at 1600/s, per server CPU-second; the
    # paired rows ran run by run in turn, so run N of one pairs with run N of
    # the other.
    for how, one, two in (
            ("server on CPU 0 (the issue's per-core protocol)", "fanout-1000-r1600-w1",
             "fanout-1000-r1600-w2"),
            ("server unpinned (how the issue's 1.37M vs 1.59M was measured)",
             "fanout-1000-r1600-w1-free", "fanout-1000-r1600-w2-free")):
        if not rc(one) and one == "fanout-1000-r1600-w1" and rc("fanout-1000-r1600"):
            one = "fanout-1000-r1600"  # the same load, not run in turn with -w2
        label = f"4. two workers vs one at 1600/s, deliveries per server CPU-s, {how}"
        target = f"w2 / w1 >= {W2_OVER_W1_MIN:.2f}"
        a, b = rc(two), rc(one)
        if not (a and b and a.get("server.per_cpu_s", 0) > 0 and b.get("server.per_cpu_s", 0) > 0):
            md.append(f"| {label} | {target} | {two} / {one} | not run | - | no data |")
            continue
        ratio = a["server.per_cpu_s"] / b["server.per_cpu_s"]
        pairs = pair_ratios(by_rep, two, one) if one != "fanout-1000-r1600" else []
        runs = "run by run: " + ", ".join(f"{x:.3f}" for _, x in pairs) if pairs else "-"
        medians = (f"{fmt(a['server.per_cpu_s'])} / {fmt(b['server.per_cpu_s'])} = {ratio:.3f} "
                   f"(delivered {a.get('delivered_ratio', 0):.4f} / "
                   f"{b.get('delivered_ratio', 0):.4f})")
        # Compared as measured, not rounded: a tie passes, 0.999 does not.
        if pairs:
            decide = statistics.median(x for _, x in pairs)
            measured = (f"median of {len(pairs)} pairs **{decide:.3f}** (decides); ratio of "
                        f"medians {medians}")
        else:
            decide = ratio
            measured = f"ratio of medians {medians} (not run in pairs: this decides)"
        md.append(f"| {label} | {target} | {two} / {one} | {measured} | {runs} | "
                  f"{verdict(decide >= W2_OVER_W1_MIN)} |")

    # The A/A control: one worker against one worker, the same setup, run in
    # the same alternation. How far from 1.000 it lands is how far two runs of
    # one thing differ here: goal 4's margin means little inside that band.
    one, aa = "fanout-1000-r1600-w1", "fanout-1000-r1600-w1b"
    a, b = rc(aa), rc(one)
    if a and b and a.get("server.per_cpu_s", 0) > 0 and b.get("server.per_cpu_s", 0) > 0:
        pairs = pair_ratios(by_rep, aa, one)
        band = ""
        if pairs:
            xs = [x for _, x in pairs]
            band = (f"median of {len(pairs)} pairs **{statistics.median(xs):.3f}** (run by run: "
                    + ", ".join(f"{x:.3f}" for x in xs) + f"; spread {min(xs):.3f} to "
                    f"{max(xs):.3f}); ")
        md.append(f"\nA/A control (the noise band of goal 4's measurement, not a goal): {aa} / "
                  f"{one}, the same one-worker server pinned to CPU 0, run just before each "
                  f"{one} run: {band}ratio of medians {fmt(a['server.per_cpu_s'])} / "
                  f"{fmt(b['server.per_cpu_s'])} = "
                  f"{a['server.per_cpu_s'] / b['server.per_cpu_s']:.3f}.")
    elif aa in by_rep or one in by_rep:
        md.append(f"\nA/A control ({aa} / {one}): no data.")

    # Steal: what the threshold set aside.
    if steal is not None:
        ev = steal.get("events", [])
        replaced = [e for e in ev if e[5] == "replaced"]
        kept = [e for e in ev if e[5] == "kept"]

        def each(es):
            return "; ".join(f"{e[1]} run {e[2]} ({e[4]} %)" for e in es)
        line = (f"\nSteal (the host's time taken from the server's CPUs over a run's measure "
                f"window): a paired run over {steal.get('max', '?')} % is run again, at most "
                f"{steal.get('reruns', '?')} extra runs per row. ")
        line += (f"{len(replaced)} run(s) replaced: {each(replaced)}." if replaced
                 else "No run was replaced.")
        if kept:
            line += (f" {len(kept)} run(s) kept over the threshold, the row's re-runs spent "
                     f"(marked, still counted): {each(kept)}.")
        md.append(line)

    busy = {row: rc(row).get("steal.others_pct") for row in GOAL4_ROWS
            if rc(row) and rc(row).get("steal.others_pct", -1) >= 0}
    if busy and max(busy.values()) > OTHERS_WARN_PCT:
        md.append(f"\n**Shared machine**: the server's CPUs were busy with other work for "
                  f"{min(busy.values()):.0f}-{max(busy.values()):.0f} % of goal 4's measure "
                  f"windows (row medians; over {OTHERS_WARN_PCT:.0f} % is a shared machine). "
                  f"A server that gets less of its CPU batches more and delivers more per "
                  f"CPU-second, so goal 4's figures here measure the load as much as roomcast; "
                  f"run again on a quiet machine.")
    return md


def main():
    out = sys.argv[1]
    runs = {}
    by_rep = {}  # row -> server -> rep number -> flattened run
    for path in sorted(glob.glob(os.path.join(out, "raw", "*.json"))):
        server, row, rep, _ = os.path.basename(path).split(".")
        try:
            with open(path) as f:
                flat = flatten(json.load(f))
        except (OSError, ValueError) as e:
            print(f"report: skipping {path}: {e}", file=sys.stderr)
            continue
        runs.setdefault(row, {}).setdefault(server, []).append(flat)
        by_rep.setdefault(row, {}).setdefault(server, {})[int(rep) if rep.isdigit() else rep] = flat
    results = {}
    for row, by_server in runs.items():
        results[row] = {}
        for server, reps in by_server.items():
            med = {}
            for k in reps[0]:
                vals = [r[k] for r in reps if k in r and has_samples(r, k)]
                if vals:
                    med[k] = statistics.median(vals)
            med["repeats"] = len(reps)
            results[row][server] = med
    meta = {}
    if os.path.exists(os.path.join(out, "meta.txt")):
        with open(os.path.join(out, "meta.txt")) as f:
            for line in f:
                k, _, v = line.partition(":")
                meta[k.strip()] = v.strip()
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, sort_keys=True)

    # Why a server or a row has no numbers (run.sh): the table says so in the cell.
    skipped, budget_rows, fix = {}, set(), None
    for name, target in (("skipped.tsv", "servers"), ("skipped-rows.tsv", "rows")):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if target == "servers" and len(parts) >= 2:
                    skipped[parts[0]] = parts[1]
                elif target == "rows" and len(parts) >= 2:
                    budget_rows.add((parts[0], parts[1]))
    if os.path.exists(os.path.join(out, "fix.txt")):
        with open(os.path.join(out, "fix.txt")) as f:
            fix = f.read().strip().partition("fix: ")[2] or None
    all_rows = set(results) | {r for _, r in budget_rows}
    planned = None  # the rows run.sh planned: row -> (servers or None for all, pin, flags)
    if os.path.exists(os.path.join(out, "rows.txt")):
        planned = read_rows_txt(os.path.join(out, "rows.txt"))
        all_rows |= set(planned)
    for row in all_rows:
        results.setdefault(row, {})

    def empty_cell(server, row):
        if (server, row) in budget_rows:
            return "time budget"
        if planned is not None and row not in planned:
            return "-"  # not planned for every server (the JWT section's storms)
        if planned is not None and planned[row][0] is not None and server not in planned[row][0]:
            return "-"  # a row for some servers only
        if server in skipped:
            return "missing: " + skipped[server]
        return "-"

    rows = sorted(results, key=row_order)
    md = []
    md.append(f"# roomcast benchmark ({meta.get('mode', '?')})\n")
    for k in ("date", "cores", "kernel", "elapsed_s"):
        if k in meta:
            md.append(f"- {k}: {meta[k]}")
    md.append("- server pinned to CPU 0 with 1 worker/thread; rcbench pinned to CPU 1, 1 thread")
    own = []
    for row in sorted(planned or {}, key=row_order):
        _, pin, flags = planned[row]
        what = (["server unpinned"] if pin == "no" else []) + ([f"`{flags}`"] if flags else [])
        if what:
            own.append(f"{row} ({', '.join(what)})")
    if own:
        md.append("- rows with a server setup of their own: " + "; ".join(own))
    md.append("- values are medians over the repeats; ratio = roomcast / peer "
              "(for B/conn lower is better, otherwise higher is better)\n")
    head = "| row | metric | " + " | ".join(SERVERS) + " | " + " | ".join(
        f"rc/{p}" for p in PEERS) + " |"
    md.append(head)
    md.append("|" + "---|" * (2 + len(SERVERS) + len(PEERS)))
    for row in rows:
        field, label, _ = key_metric(row)
        vals = {s: results[row].get(s, {}).get(field) for s in SERVERS}
        cells = [fmt(vals[s]) if vals[s] is not None else empty_cell(s, row) for s in SERVERS]
        ratios = []
        for p in PEERS:
            a, b = vals["roomcast"], vals[p]
            ratios.append(f"{a / b:.2f}" if a is not None and b not in (None, 0) and a >= 0
                          and b > 0 else "-")
        md.append(f"| {row} | {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

    missing = [p for p in PEERS if p in skipped]
    if missing:
        md.append("\nMissing peers: " + "; ".join(f"{p}: {skipped[p]}" for p in missing) +
                  (f". Fix: `{fix}`, then run again." if fix else "."))
    else:
        md.append("\nEvery peer was measured.")
    steal = None
    if "steal_max_pct" in meta or os.path.exists(os.path.join(out, "steal.tsv")):
        steal = {"max": meta.get("steal_max_pct", "?"), "reruns": meta.get("steal_reruns", "?"),
                 "events": []}
        if os.path.exists(os.path.join(out, "steal.tsv")):
            with open(os.path.join(out, "steal.tsv")) as f:
                for line in f:
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) == 6:
                        steal["events"].append(tuple(parts))
    md.extend(goals(results, by_rep, steal))
    md.append("\n## Detail\n")
    md.append("Steal: the host's time taken over the measure window, as % of it, on the "
              "server's CPUs / on rcbench's. Others: the server's CPUs busy with neither the "
              "server nor rcbench (other processes on the machine), likewise. Medians over the "
              "runs.\n")
    md.append("| row | server | per s | per server CPU-s | delivered | p50 us | p90 us | p99 us "
              "| p99.9 us | server CPU % | client CPU % | steal % server / client | others % "
              "| RSS max kB | runs |")
    md.append("|" + "---|" * 15)
    for row in rows:
        if row.startswith("jwt"):
            continue  # their own table below
        for s in SERVERS:
            r = results[row].get(s)
            if not r:
                continue
            if row.startswith(("idle", "storm")):
                per_s = r.get("upgrades_per_s")
                lat = "upgrade_us"
                per_cpu = None
                deliv = f"{r.get('opened', 0):.0f}/{r.get('conns', 0):.0f} open"
                if row.startswith("idle"):
                    deliv += f", {fmt(r.get('server.rss_per_conn_b'))} B/conn"
            else:
                per_s = r.get("per_s")
                lat = "latency_us"
                per_cpu = r.get("server.per_cpu_s")
                deliv = f"{r.get('delivered_ratio', 0):.4f}"
            md.append(
                f"| {row} | {s} | {fmt(per_s)} | {fmt(per_cpu)} | {deliv} | "
                f"{fmt(r.get(lat + '.p50'), 1)} | {fmt(r.get(lat + '.p90'), 1)} | "
                f"{fmt(r.get(lat + '.p99'), 1)} | {fmt(r.get(lat + '.p999'), 1)} | "
                f"{fmt(r.get('server.cpu_pct'), 1)} | {fmt(r.get('client_cpu_pct'), 1)} | "
                f"{steal_cell(r)} | {others_cell(r)} | {fmt(r.get('server.rss_max_kb'))} | "
                f"{r['repeats']} |")
    jwt_rows = [r for r in rows if r.startswith("jwt") and "roomcast" in results[r]]
    if jwt_rows:
        md.append("\n## JWT verification (one core)\n")
        md.append("jwt_verify (split, base64url, key choice, signature) against the bare "
                  "OpenSSL call on the decoded signature with the same key, in the same run.\n")
        md.append("| row | roomcast verifications/s | raw OpenSSL/s | roomcast / raw |")
        md.append("|---|---|---|---|")
        for row in jwt_rows:
            r = results[row]["roomcast"]
            md.append(f"| {row} | {fmt(r.get('verify_per_s'))} | {fmt(r.get('raw_per_s'))} | "
                      f"{r.get('ratio', 0):.2f} |")
        storms = sorted(r for r in results if r.startswith("storm-") and r.endswith("-rs256"))
        for row in storms:
            base = row[: -len("-rs256")] + "-lua"
            a = results[row].get("roomcast", {}).get("upgrades_per_s")
            b = results.get(base, {}).get("roomcast", {}).get("upgrades_per_s")
            if a and b:
                md.append(f"\nUpgrade storm through chat.lua with an RS256 token checked by "
                          f"jwt_auth ({row}) / without the plugin ({base}): "
                          f"{fmt(a)} / {fmt(b)} upgrades/s = {a / b:.2f}")
    pmd = [r for r in ("fanout-json-1000-r200", "fanout-pmd-1000-r200", "fanout-json-1000-r20",
                       "fanout-pmd-1000-r20") if r in results]
    if pmd:
        md.append("\n## permessage-deflate (1 room x 1000, 200 or 20 publishes/s, 1 KiB JSON text)\n")
        md.append("| row | server | deliveries/s | delivered | per server CPU-s | server CPU % "
                  "| wire B per delivery | deflate conns |")
        md.append("|" + "---|" * 8)
        for row in pmd:
            for s in SERVERS:
                r = results[row].get(s)
                if r:
                    md.append(f"| {row} | {s} | {fmt(r.get('per_s'))} | "
                              f"{r.get('delivered_ratio', 0):.4f} | {fmt(r.get('server.per_cpu_s'))} | "
                              f"{fmt(r.get('server.cpu_pct'), 1)} | "
                              f"{fmt(r.get('wire_bytes_per_delivery'), 1)} | "
                              f"{fmt(r.get('deflate_conns'))} |")
        def ratio(a, b, k):
            return f"{a[k] / b[k]:.2f}" if a.get(k, 0) > 0 and b.get(k, 0) > 0 else "-"
        md.append("")
        for rate in ("r200", "r20"):
            rc_z = results.get("fanout-pmd-1000-" + rate, {}).get("roomcast", {})
            rc_p = results.get("fanout-json-1000-" + rate, {}).get("roomcast", {})
            nd_z = results.get("fanout-pmd-1000-" + rate, {}).get("node", {})
            md.append(f"- {rate}: roomcast deflate / roomcast plain: per server CPU-s "
                      f"{ratio(rc_z, rc_p, 'server.per_cpu_s')}, wire bytes "
                      f"{ratio(rc_z, rc_p, 'wire_bytes_per_delivery')}; roomcast deflate / node "
                      f"deflate: per server CPU-s {ratio(rc_z, nd_z, 'server.per_cpu_s')}, "
                      f"deliveries/s {ratio(rc_z, nd_z, 'per_s')}")
    plots = make_plots(out, results)
    if plots:
        md.append("\n## Plots\n")
        for p in plots:
            md.append(f"![{p}](plots/{p})")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[: md.index("\n## Detail\n")]))


def make_plots(out, results):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no plots", file=sys.stderr)
        return []
    pdir = os.path.join(out, "plots")
    os.makedirs(pdir, exist_ok=True)
    made = []

    def series(prefix, xfun, field, pattern=None):
        data = {}
        for row, by in results.items():
            if not row.startswith(prefix) or (pattern and not re.match(pattern, row)):
                continue
            for s, r in by.items():
                if r.get(field) is not None:
                    data.setdefault(s, []).append((xfun(row), r[field]))
        return {s: sorted(v) for s, v in data.items()}

    def write_dat(name, data):
        path = os.path.join(pdir, name)
        with open(path, "w") as f:
            for s in SERVERS:
                if s not in data:
                    continue
                f.write(f"# {s}\n")
                for x, y in data[s]:
                    f.write(f"{x} {y}\n")
                f.write("\n\n")
        return path

    def plot(png, script):
        try:
            subprocess.run(["gnuplot"], input=script, text=True, check=True, timeout=30,
                           capture_output=True)
            made.append(png)
        except (subprocess.SubprocessError, OSError) as e:
            print(f"report: gnuplot failed for {png}: {e}", file=sys.stderr)

    term = "set terminal pngcairo size 720,420 font 'sans,10'\n"

    rate = series("fanout-1000-r", lambda r: int(r.split("-r")[1]), "per_s",
                  r"fanout-1000-r\d+$")
    if rate:
        dat = write_dat("fanout_rate.dat", rate)
        idx = [s for s in SERVERS if s in rate]
        lines = ", ".join(f"'{dat}' index {i} with linespoints title '{s}'"
                          for i, s in enumerate(idx))
        plot("fanout_rate.png", term + f"set output '{pdir}/fanout_rate.png'\n"
             "set title 'fan-out, 1 room x 1000 members: deliveries/s vs publish rate'\n"
             "set xlabel 'publishes/s'; set ylabel 'deliveries/s'; set key top left\n"
             "set grid\n"
             f"plot {lines}, x*1000 with lines dashtype 2 lc 'gray' title 'expected'\n")

    def room(r):
        return int(r.split("-")[1])
    sizes = [r for r in results if re.match(r"fanout-\d+-r\d+$", r)]
    bysize = {}
    for row in sizes:
        n = room(row)
        if n != 1000 or row == "fanout-1000-r20":
            bysize[row] = results[row]
    if len({room(r) for r in bysize}) > 1:
        p50 = {}
        p99 = {}
        for row, by in bysize.items():
            for s, r in by.items():
                p50.setdefault(s, []).append((room(row), r.get("latency_us.p50", 0)))
                p99.setdefault(s, []).append((room(row), r.get("latency_us.p99", 0)))
        d50 = write_dat("latency_p50.dat", {s: sorted(v) for s, v in p50.items()})
        d99 = write_dat("latency_p99.dat", {s: sorted(v) for s, v in p99.items()})
        idx = [s for s in SERVERS if s in p99]
        lines = ", ".join(
            f"'{d99}' index {i} with linespoints lc {i + 1} title '{s} p99', "
            f"'{d50}' index {i} with linespoints dashtype 2 lc {i + 1} title '{s} p50'"
            for i, s in enumerate(idx))
        plot("latency_room.png", term + f"set output '{pdir}/latency_room.png'\n"
             "set title 'publish->receive latency vs room size (20k deliveries/s offered)'\n"
             "set xlabel 'members'; set ylabel 'latency (us)'; set logscale xy; set grid\n"
             "set key top left\n"
             f"plot {lines}\n")

    echo_rows = sorted(r for r in results if r.startswith("echo"))
    if echo_rows:
        path = os.path.join(pdir, "echo_cpu.dat")
        present = [s for s in SERVERS if any(s in results[r] for r in echo_rows)]
        with open(path, "w") as f:
            f.write("row " + " ".join(present) + "\n")
            for r in echo_rows:
                vals = [results[r].get(s, {}).get("server.per_cpu_s", 0) for s in present]
                f.write(r + " " + " ".join(f"{v:.0f}" for v in vals) + "\n")
        cols = ", ".join(f"'{path}' using {i + 2}:xtic(1) title '{s}'"
                         for i, s in enumerate(present))
        plot("echo_cpu.png", term + f"set output '{pdir}/echo_cpu.png'\n"
             "set title 'echo: messages per server CPU-second'\n"
             "set style data histograms; set style histogram clustered gap 1\n"
             "set style fill solid 0.8 border -1; set boxwidth 0.9; set grid ytics\n"
             "set ylabel 'msgs / CPU-s'; set key top left; set yrange [0:*]\n"
             f"plot {cols}\n")
    return made


if __name__ == "__main__":
    main()
