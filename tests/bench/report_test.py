#!/usr/bin/python3
"""report_test - report.py on synthetic raw runs: the tables render, a row
for roomcast only shows "-" for every peer (a missing peer included), and the
"Goals (issue 14)" section gives PASS and MISS against issue 14's targets.

Two bench-out directories are built by hand, each with raw SERVER.ROW.REP.json
files shaped like rcbench --json output and the rows.txt, skipped.tsv and
meta.txt that run.sh writes:

  pass: idle 200 B/conn, 5000/s fully delivered with p99 20-30 ms, two
        workers at or above one (pinned 1.000, a tie, unpinned 1.05);
  miss: idle 260 B/conn, 5000/s delivered but with p99 100 ms (and again
        with p99 20 ms but 99.85 % delivered), two workers below one (pinned
        0.90, unpinned 0.95), and the pinned one-worker row missing so the
        fanout-1000-r1600 row (same load, not run in turn) stands in;
  none: no goal row at all: every goal says "no data".
  pairs: goal 4 where the median of the per-pair ratios and the ratio of
        the medians disagree (drift across the runs), both ways: the pairs
        decide; the A/A row (w1b / w1) as the noise band; steal per row in
        the detail table, and the runs steal.tsv says were replaced or kept.

No load, no timing: report.py is run on fixed inputs and its output read.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import rctest  # noqa: E402

REPORT = os.path.join(HERE, "report.py")
tally = rctest.Tally()
check = tally.check


def fanout_run(server, per_cpu_s, delivered=1.0, p99_us=20000.0, rate=1600, steal=None):
    """rcbench's fanout JSON; delivered 0 is a run that timed nothing (every
    percentile 0, as rcbench writes it). steal: (server %, client %)."""
    if delivered == 0:
        p99_us = 0.0
    return {"scenario": "fanout", "target": server, "conns": 1000, "rate": float(rate),
            "delivered_ratio": delivered, "per_s": rate * 1000.0 * delivered,
            "latency_us": {"count": int(rate * 2000 * delivered), "p50": p99_us / 2,
                           "p90": p99_us * 0.8, "p99": p99_us, "p999": p99_us * 1.1},
            "server": {"cpu_s": 2.0, "cpu_pct": 100.0, "per_cpu_s": per_cpu_s,
                       "rss_max_kb": 20000, "rss_per_conn_b": -1.0},
            "client_cpu_pct": 80.0,
            **({"steal": {"server_pct": steal[0], "client_pct": steal[1], "server_s": 0.0,
                          "client_s": 0.0, "server_cpus": "0", "client_cpus": "1",
                          "others_pct": steal[2] if len(steal) > 2 else -1.0}}
               if steal else {})}


def idle_run(server, b_per_conn):
    return {"scenario": "idle", "target": server, "conns": 10000, "opened": 10000,
            "upgrades_per_s": 30000.0, "upgrade_us": {"p50": 100.0, "p99": 900.0},
            "server": {"cpu_s": 0.1, "cpu_pct": 10.0, "per_cpu_s": 0.0,
                       "rss_max_kb": 9000, "rss_per_conn_b": b_per_conn}}


def make_out(name, runs, rows_txt, steal_tsv=None):
    """runs: {(server, row, rep): dict}; rows_txt: lines for rows.txt;
    steal_tsv: lines for steal.tsv (and the threshold lines in meta.txt)."""
    out = os.path.join(tmp, name)
    os.makedirs(os.path.join(out, "raw"))
    for (server, row, rep), data in runs.items():
        with open(os.path.join(out, "raw", f"{server}.{row}.{rep}.json"), "w") as f:
            json.dump(data, f)
    with open(os.path.join(out, "rows.txt"), "w") as f:
        f.write("".join(line + "\n" for line in rows_txt))
    with open(os.path.join(out, "skipped.tsv"), "w") as f:
        f.write("lws\tlibwebsockets-dev not installed (run make bench-deps)\n")
    with open(os.path.join(out, "meta.txt"), "w") as f:
        f.write("mode: full\ndate: 2026-11-30T00:00:00Z\nelapsed_s: 1\n")
        if steal_tsv is not None:
            f.write("steal_max_pct: 1\nsteal_reruns: 3\n")
    if steal_tsv is not None:
        with open(os.path.join(out, "steal.tsv"), "w") as f:
            f.write("".join(line + "\n" for line in steal_tsv))
    return out


def render(out):
    p = subprocess.run(["/usr/bin/python3", REPORT, out], capture_output=True, text=True,
                       timeout=120)
    check(p.returncode == 0, f"{os.path.basename(out)}: report.py exit {p.returncode}: "
          f"{p.stderr[-1500:]}")
    path = os.path.join(out, "results.md")
    md = open(path).read() if os.path.exists(path) else ""
    return md, p.stdout


def table_row(md, first_cells):
    """The markdown table line that starts with the given cells, split."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[: len(first_cells)] == first_cells:
            return cells
    return None


def goal_line(md, goal_prefix, row=None):
    sect = md.partition("## Goals (issue 14)")[2].partition("\n## ")[0]
    for line in sect.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(goal_prefix) and (row is None or row in line):
            return cells
    return None


ROWS = [
    "idle-10000",
    "fanout-1000-r100",
    "fanout-1000-r1600",
    "fanout-1000-r5000",
    "fanout-1000-r1600-w1\troomcast\tyes\t",
    "fanout-1000-r1600-w2\troomcast\tyes\t-w 2",
    "fanout-1000-r1600-w1-free\troomcast\tno\t",
    "fanout-1000-r1600-w2-free\troomcast\tno\t-w 2",
]

tmp = tempfile.mkdtemp(prefix="rcreport-")
try:
    # ---- every goal met -------------------------------------------------------
    runs = {}
    for rep in (1, 2, 3):
        runs[("roomcast", "idle-10000", rep)] = idle_run("roomcast", 200.0 + rep)
        runs[("node", "idle-10000", rep)] = idle_run("node", 6000.0)
        runs[("roomcast", "fanout-1000-r100", rep)] = fanout_run("roomcast", 240e3, rate=100)
        runs[("node", "fanout-1000-r100", rep)] = fanout_run("node", 180e3, rate=100)
        runs[("roomcast", "fanout-1000-r1600", rep)] = fanout_run("roomcast", 1.6e6)
        runs[("node", "fanout-1000-r1600", rep)] = fanout_run("node", 0.4e6, 0.8, 900e3)
        runs[("roomcast", "fanout-1000-r5000", rep)] = fanout_run(
            "roomcast", 5.0e6, 1.0, 20000.0 + 5000 * rep, rate=5000)
        runs[("node", "fanout-1000-r5000", rep)] = fanout_run("node", 0.5e6, 0.3, 2e6, 5000)
        # gorilla: two runs with nothing delivered in the measure window.
        runs[("gorilla", "fanout-1000-r5000", rep)] = fanout_run(
            "gorilla", 0.0 if rep < 3 else 0.2e6, 0.0 if rep < 3 else 0.1, 3e6, 5000)
        runs[("gorilla", "fanout-1000-r1600", rep)] = fanout_run("gorilla", 0.0, 0.0)
        # Pinned: 1.600M vs 1.598M (ratio 0.99875, shown and judged as 1.00).
        runs[("roomcast", "fanout-1000-r1600-w1", rep)] = fanout_run("roomcast", 1.6e6)
        runs[("roomcast", "fanout-1000-r1600-w2", rep)] = fanout_run("roomcast", 1.6e6)
        runs[("roomcast", "fanout-1000-r1600-w1-free", rep)] = fanout_run("roomcast", 1.5e6)
        runs[("roomcast", "fanout-1000-r1600-w2-free", rep)] = fanout_run("roomcast", 1.575e6)
    md, stdout = render(make_out("pass", runs, ROWS))

    # The existing tables still render, with the new rows in them.
    check("## Goals (issue 14)" in stdout, "the goals section is printed with the table")
    check("\n## Detail\n" in md, "detail table present")
    head = table_row(md, ["row", "metric", "roomcast", "node", "gorilla", "lws"])
    check(head is not None, "main table header")
    r = table_row(md, ["fanout-1000-r100"])
    check(r is not None and r[2] == "240.0k" and r[3] == "180.0k" and r[6] == "1.33",
          f"fanout-1000-r100 row with roomcast, node and their ratio: {r}")
    check(r is not None and r[5].startswith("missing: libwebsockets-dev"),
          f"a row for every server: the missing peer says why: {r}")
    r = table_row(md, ["fanout-1000-r5000"])
    check(r is not None and r[2] == "5.00M" and r[3] == "500.0k" and r[6] == "10.00",
          f"fanout-1000-r5000 for roomcast and node: {r}")
    for row in ("fanout-1000-r1600-w2", "fanout-1000-r1600-w1-free", "fanout-1000-r1600-w2-free"):
        r = table_row(md, [row])
        check(r is not None and r[2] != "-" and r[3:6] == ["-", "-", "-"] and r[6:9] == ["-"] * 3,
              f"{row}: roomcast only, '-' for every peer (lws missing included): {r}")
    r = table_row(md, ["fanout-1000-r5000", "node"])
    check(r is not None and r[4] == "0.3000" and r[7] == "2000000.0",
          f"detail: node's delivered ratio and p99 at 5000/s: {r}")
    r = table_row(md, ["fanout-1000-r5000", "gorilla"])
    check(r is not None and r[4] == "0.0000" and r[7] == "3000000.0",
          f"detail: the latency of gorilla's one run that timed anything, not 0: {r}")
    r = table_row(md, ["fanout-1000-r1600", "gorilla"])
    check(r is not None and r[5:9] == ["-"] * 4 and r[2] == "0",
          f"detail: no latency when nothing was timed: {r}")
    check("rows with a server setup of their own: " in md and
          "fanout-1000-r1600-w2-free (server unpinned, `-w 2`)" in md and
          "fanout-1000-r1600-w1-free (server unpinned)" in md,
          "the header names the rows' own server setups")

    g = goal_line(md, "1.")
    check(g is not None and g[2] == "idle-10000" and g[3] == "202 B/conn" and
          g[4] == "201, 202, 203" and g[5] == "**PASS**", f"goal 1 pass: {g}")
    g = goal_line(md, "3.")
    check(g is not None and g[3] == "100.00 % delivered, p99 30.0 ms" and
          "(3 of 3 meet both)" in g[4] and g[5] == "**PASS**", f"goal 3 pass: {g}")
    g = goal_line(md, "4.", "CPU 0")
    check(g is not None and g[2] == "fanout-1000-r1600-w2 / fanout-1000-r1600-w1" and
          "= 1.000" in g[3] and g[4] == "run by run: 1.000, 1.000, 1.000" and g[5] == "**PASS**",
          f"goal 4 pinned: a tie passes: {g}")
    g = goal_line(md, "4.", "unpinned")
    check(g is not None and "= 1.050" in g[3] and g[5] == "**PASS**", f"goal 4 unpinned pass: {g}")

    res = json.load(open(os.path.join(tmp, "pass", "results.json")))["results"]
    check(res["fanout-1000-r1600-w2"]["roomcast"]["server.per_cpu_s"] == 1.6e6 and
          res["fanout-1000-r1600-w2"]["roomcast"]["repeats"] == 3, "results.json medians")

    # ---- every goal missed --------------------------------------------------------
    runs = {}
    for rep in (1, 2, 3):
        runs[("roomcast", "idle-10000", rep)] = idle_run("roomcast", 260.0)
        runs[("roomcast", "fanout-1000-r1600", rep)] = fanout_run("roomcast", 1.6e6)
        # One run meets goal 3; the median is delivered enough, too late.
        ok = rep == 2
        runs[("roomcast", "fanout-1000-r5000", rep)] = fanout_run(
            "roomcast", 5.0e6, 1.0 if rep != 1 else 0.995, 40000.0 if ok else 100000.0,
            rate=5000)
        # fanout-1000-r1600-w1 is not there: fanout-1000-r1600 stands in.
        runs[("roomcast", "fanout-1000-r1600-w2", rep)] = fanout_run("roomcast", 1.44e6)
        runs[("roomcast", "fanout-1000-r1600-w1-free", rep)] = fanout_run("roomcast", 1.6e6)
        runs[("roomcast", "fanout-1000-r1600-w2-free", rep)] = fanout_run(
            "roomcast", [1.6e6, 1.52e6, 1.44e6][rep - 1])
    md, _ = render(make_out("miss", runs, [r for r in ROWS if "-w1\t" not in r]))
    g = goal_line(md, "1.")
    check(g is not None and g[3] == "260 B/conn" and g[5] == "**MISS**", f"goal 1 miss: {g}")
    g = goal_line(md, "3.")
    check(g is not None and g[3] == "100.00 % delivered, p99 100.0 ms" and
          "(1 of 3 meet both)" in g[4] and g[5] == "**MISS**", f"goal 3 miss on p99: {g}")
    g = goal_line(md, "4.", "CPU 0")
    check(g is not None and g[2] == "fanout-1000-r1600-w2 / fanout-1000-r1600" and
          "1.44M / 1.60M = 0.900" in g[3] and g[4] == "-" and g[5] == "**MISS**",
          f"goal 4 pinned miss, the shared row standing in (not paired): {g}")
    g = goal_line(md, "4.", "unpinned")
    check(g is not None and "= 0.950" in g[3] and g[4] == "run by run: 1.000, 0.950, 0.900" and
          g[5] == "**MISS**", f"goal 4 unpinned miss, run by run: {g}")
    r = table_row(md, ["fanout-1000-r1600-w1"])
    check(r is None, f"a row that is not there is not invented: {r}")

    # ---- goal 4 a hair under one: not rounded up -----------------------------------
    runs = {}
    for rep in (1, 2, 3):
        runs[("roomcast", "fanout-1000-r1600-w1", rep)] = fanout_run("roomcast", 1.6e6)
        runs[("roomcast", "fanout-1000-r1600-w2", rep)] = fanout_run("roomcast", 1.598e6)
    md, _ = render(make_out("near", runs, ["fanout-1000-r1600-w1", "fanout-1000-r1600-w2"]))
    g = goal_line(md, "4.", "CPU 0")
    check(g is not None and "= 0.999" in g[3] and g[5] == "**MISS**",
          f"goal 4 pinned 0.99875 is a miss: {g}")

    # ---- goal 3 with nothing timed in two runs of three ------------------------------
    runs = {("roomcast", "fanout-1000-r5000", rep): fanout_run("roomcast", 1e6, d, 30000.0, 5000)
            for rep, d in ((1, 0.0), (2, 0.0), (3, 1.0))}
    md, _ = render(make_out("miss-nothing", runs, ["fanout-1000-r5000"]))
    g = goal_line(md, "3.")
    check(g is not None and g[3] == "0.00 % delivered, p99 30.0 ms" and
          g[4] == "0.00 % / -, 0.00 % / -, 100.00 % / 30.0 ms (1 of 3 meet both)" and
          g[5] == "**MISS**", f"goal 3 miss with nothing delivered: {g}")
    runs = {("roomcast", "fanout-1000-r5000", 1): fanout_run("roomcast", 0.0, 0.0, rate=5000)}
    md, _ = render(make_out("miss-none", runs, ["fanout-1000-r5000"]))
    g = goal_line(md, "3.")
    check(g is not None and g[3] == "0.00 % delivered, p99 -" and g[5] == "**MISS**",
          f"goal 3 miss, no p99 at all: {g}")

    # ---- goal 3 missed on the delivered ratio alone --------------------------------
    runs = {("roomcast", "fanout-1000-r5000", rep): fanout_run("roomcast", 5.0e6, d, 20000.0, 5000)
            for rep, d in ((1, 0.998), (2, 0.9985), (3, 1.0))}
    md, _ = render(make_out("miss-delivered", runs, ["fanout-1000-r5000"]))
    g = goal_line(md, "3.")
    check(g is not None and g[3] == "99.85 % delivered, p99 20.0 ms" and
          "(1 of 3 meet both)" in g[4] and g[5] == "**MISS**", f"goal 3 miss on delivered: {g}")

    # ---- goal 4: the pairs decide, the A/A band, steal ----------------------------------
    # Pinned: the machine drifts up over the three pairs (1.0M, 1.5M, 2.0M);
    # w2 beats its neighbour in two pairs of three (1.02, 0.98, 1.02): the
    # median of the pairs passes (1.020) where the ratio of the medians
    # (1.47M / 1.50M = 0.980) would miss. Unpinned the other way round: w2
    # loses two pairs of three (0.98, 1.02, 0.98 -> 0.980, MISS) while the
    # ratio of the medians says 1.53M / 1.50M = 1.020.
    runs = {}
    for rep, base, w2, w2f, aa in ((1, 1.0e6, 1.02e6, 0.98e6, 1.01e6),
                                   (2, 1.5e6, 1.47e6, 1.53e6, 1.485e6),
                                   (3, 2.0e6, 2.04e6, 1.96e6, 2.04e6)):
        runs[("roomcast", "fanout-1000-r1600-w1", rep)] = fanout_run(
            "roomcast", base, steal=(0.5 * rep, 0.0, 10.0 * rep))
        runs[("roomcast", "fanout-1000-r1600-w2", rep)] = fanout_run(
            "roomcast", w2, steal=(0.0, 2.0))
        runs[("roomcast", "fanout-1000-r1600-w1b", rep)] = fanout_run(
            "roomcast", aa, steal=(-1.0, -1.0) if rep == 1 else (0.25, 0.0))
        runs[("roomcast", "fanout-1000-r1600-w1-free", rep)] = fanout_run("roomcast", base)
        runs[("roomcast", "fanout-1000-r1600-w2-free", rep)] = fanout_run("roomcast", w2f)
    steal_tsv = ["roomcast\tfanout-1000-r1600-w2\t2\t0\t2.5\treplaced",
                 "roomcast\tfanout-1000-r1600-w1\t3\t0\t1.5\treplaced",
                 "roomcast\tfanout-1000-r1600-w1\t3\t1\t4.0\tkept"]
    md, _ = render(make_out("pairs", runs, ROWS[4:] + ["fanout-1000-r1600-w1b\troomcast\tyes\t"],
                            steal_tsv))
    g = goal_line(md, "4.", "CPU 0")
    check(g is not None and "median of 3 pairs **1.020** (decides)" in g[3] and
          "1.47M / 1.50M = 0.980" in g[3] and g[4] == "run by run: 1.020, 0.980, 1.020" and
          g[5] == "**PASS**", f"goal 4 pinned: the pairs' median passes, not the medians: {g}")
    g = goal_line(md, "4.", "unpinned")
    check(g is not None and "median of 3 pairs **0.980** (decides)" in g[3] and
          "1.53M / 1.50M = 1.020" in g[3] and g[5] == "**MISS**",
          f"goal 4 unpinned: the pairs' median misses though the medians pass: {g}")
    check("**median of the per-pair ratios**" in md and "does not decide" in md,
          "results.md says which estimator decides and why")
    aa = [line for line in md.splitlines() if line.startswith("A/A control")]
    check(len(aa) == 1 and "fanout-1000-r1600-w1b / fanout-1000-r1600-w1" in aa[0] and
          "median of 3 pairs **1.010**" in aa[0] and "1.010, 0.990, 1.020" in aa[0] and
          "spread 0.990 to 1.020" in aa[0] and "1.49M / 1.50M = 0.990" in aa[0] and
          "not a goal" in aa[0], f"the A/A row as the noise band: {aa}")
    sect = md.partition("## Goals (issue 14)")[2].partition("\n## ")[0]
    check(not any("w1b" in line for line in sect.splitlines() if line.startswith("|")),
          "the A/A row is in no goal row of the table")
    st = [line for line in md.splitlines() if line.startswith("Steal (")]
    check(len(st) == 1 and "over 1 % is run again, at most 3 extra runs per row" in st[0] and
          "2 run(s) replaced: fanout-1000-r1600-w2 run 2 (2.5 %); fanout-1000-r1600-w1 run 3 "
          "(1.5 %)." in st[0] and
          "1 run(s) kept over the threshold" in st[0] and "fanout-1000-r1600-w1 run 3 (4.0 %)"
          in st[0], f"the steal re-runs counted with their reasons: {st}")
    r = table_row(md, ["fanout-1000-r1600-w1", "roomcast"])
    check(r is not None and r[11] == "1.0 / 0.0" and r[12] == "20.0",
          f"detail: w1's median steal 1.0 / 0.0, others 20 %: {r}")
    r = table_row(md, ["fanout-1000-r1600-w2", "roomcast"])
    check(r is not None and r[11] == "0.0 / 2.0" and r[12] == "-",
          f"detail: w2's steal, server / client, others unknown (-1): {r}")
    r = table_row(md, ["fanout-1000-r1600-w1b", "roomcast"])
    check(r is not None and r[11] == "0.2 / 0.0",
          f"detail: a run without a steal figure (-1) left out of the median: {r}")
    r = table_row(md, ["fanout-1000-r1600-w1-free", "roomcast"])
    check(r is not None and r[11] == "- / -" and r[12] == "-" and r[13] == "20.0k",
          f"detail: no steal figure at all: {r}")
    check("Steal: the host's time taken" in md and "steal % server / client" in md,
          "the detail table has the steal column, explained")
    check("**Shared machine**: the server's CPUs were busy with other work for 20-20 %" in md,
          "goal 4's rows on a shared machine (others 20 %) are flagged")
    # w1's others at 2.5-7.5 %: a quiet machine, no flag.
    for rep in (1, 2, 3):
        runs[("roomcast", "fanout-1000-r1600-w1", rep)]["steal"]["others_pct"] = 2.5 * rep
    md, _ = render(make_out("pairs-quiet", runs, ROWS[4:], []))
    check("Shared machine" not in md, "others at 5 % is no shared machine")

    # No steal.tsv, no threshold in meta.txt (an older run.sh): no steal line.
    md, _ = render(make_out("pairs-nosteal", runs, ROWS[4:]))
    check(not any(line.startswith("Steal (") for line in md.splitlines()),
          "no steal line without run.sh's steal records")
    # A run.sh that replaced nothing says so.
    md, _ = render(make_out("pairs-clean", runs, ROWS[4:], []))
    check("No run was replaced." in md, "a clean run says no run was replaced")

    # ---- no goal rows at all (a quick run filtered to echo) ---------------------------
    runs = {("roomcast", "echo-32-d1", 1): {"scenario": "echo", "per_s": 1e5,
                                            "delivered_ratio": 1.0, "server": {"per_cpu_s": 2e5}}}
    md, _ = render(make_out("none", runs, ["echo-32-d1"]))
    sect = md.partition("## Goals (issue 14)")[2].partition("\n## ")[0]
    check(len(re.findall(r"\| no data \|", sect)) == 4 and "PASS" not in sect and
          "MISS" not in sect, "without the rows every goal says no data:\n" + sect)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

tally.done("ok   report.py: tables, roomcast-only rows, goals PASS and MISS")
