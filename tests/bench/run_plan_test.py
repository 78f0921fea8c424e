#!/usr/bin/python3
"""run_plan_test - run.sh's row machinery, checked on its plan: with
RC_BENCH_DRY=1 run.sh starts nothing and runs nothing, and writes every server
start (its pinning and command line) and every rcbench run, in order, to
bench-out/plan.txt. Checked here:

  - a row for roomcast only (servers=) never runs on a peer, and the rows for
    every server run on each;
  - the paired rows (issue 14 goal 4) run one run of each in turn, each on a
    server started for it: -w 2 on the command line of the two-worker rows,
    taskset for the pinned ones and none for the -free ones;
  - fresh=yes rows start a server for every run, and the run after one is on
    another server (a peer's backlog goes with its server);
  - RC_BENCH_ROWS keeps only the rows it matches (and the sections it does not
    name stay out); a bad regex is refused with exit 2;
  - quick mode: one run of each, the 5000/s row for roomcast only;
  - the A/A row (fanout-1000-r1600-w1b) in the alternation, just before -w1,
    on a pinned one-worker server like -w1's;
  - steal: a paired run over RC_BENCH_STEAL_MAX is run again at once on a
    server of its own (RC_BENCH_DRY_STEAL gives the dry runs their steal),
    at most RC_BENCH_STEAL_RERUNS extra runs per row, then kept and marked;
    steal.tsv records each; a bad threshold is refused with exit 2.

No load and no timing: nothing is started. Exit 77 (skipped) on a machine
with fewer than 2 CPUs or without taskset, where run.sh pins nothing.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import rctest  # noqa: E402

RUN = os.path.join(HERE, "run.sh")
tally = rctest.Tally()
check = tally.check


def plan(mode, rows=None, servers="roomcast node gorilla lws", extra=None):
    out = tempfile.mkdtemp(prefix="rcplan-", dir=tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RC_BENCH")}
    env.update(RC_BENCH_DRY="1", RC_BENCH_OUT=out, RC_BENCH_SERVERS=servers,
               RC_BENCH_BUILD=os.path.join(tmp, "no-build"))
    if rows is not None:
        env["RC_BENCH_ROWS"] = rows
    env.update(extra or {})
    p = subprocess.run(["bash", RUN, mode], capture_output=True, text=True, timeout=120, env=env)
    lines = []
    if os.path.exists(os.path.join(out, "plan.txt")):
        with open(os.path.join(out, "plan.txt")) as f:
            lines = [line.rstrip("\n") for line in f]
    return p, lines, out


def runs(lines, server=None):
    """[(server, row, rep)] of the "run" lines, in order."""
    got = []
    for line in lines:
        m = re.match(r"run (\S+) (\S+) (\d+):", line)
        if m and (server is None or m.group(1) == server):
            got.append((m.group(1), m.group(2), int(m.group(3))))
    return got


def start_before(lines, i):
    """The start line that the run line at index i runs on."""
    for j in range(i - 1, -1, -1):
        if lines[j].startswith("start "):
            return j, lines[j]
    return None, None


if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
    print("skipped: run.sh pins nothing here (fewer than 2 CPUs or no taskset)")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="rcplan-")
try:
    # ---- full mode, the goal rows ------------------------------------------------
    p, lines, out = plan("full", "^fanout-1000-r(1600|5000)")
    check(p.returncode == 0, f"full dry run exit {p.returncode}: {p.stderr[-1500:]}")
    check(not os.path.exists(os.path.join(out, "results.md")), "a dry run writes no report")
    for peer in ("node", "gorilla", "lws"):
        got = runs(lines, peer)
        check(got == [(peer, "fanout-1000-r1600", r) for r in (1, 2, 3)] +
              [(peer, "fanout-1000-r5000", r) for r in (1, 2, 3)],
              f"{peer}: fanout-1000-r1600 and -r5000, 3 runs each, nothing else: {got}")
    rc = runs(lines, "roomcast")
    paired = [r for r in rc if "-w" in r[1]]
    want = [("roomcast", f"fanout-1000-r1600-{w}", rep) for rep in (1, 2, 3)
            for w in ("w1b", "w1", "w2", "w1-free", "w2-free")]
    check(paired == want, f"paired rows one run of each in turn: {paired}")
    check(rc[:6] == [("roomcast", "fanout-1000-r1600", r) for r in (1, 2, 3)] +
          [("roomcast", "fanout-1000-r5000", r) for r in (1, 2, 3)],
          f"roomcast's goal-rate rows first: {rc[:6]}")
    seen_starts = set()
    for i, line in enumerate(lines):
        m = re.match(r"run (\S+) (\S+) (\d+): (.*)", line)
        if not m:
            continue
        server, row, rep, args = m.group(1), m.group(2), m.group(3), m.group(4)
        j, start = start_before(lines, i)
        check(start is not None and j not in seen_starts,
              f"{server} {row} run {rep} on a server started for it (fresh=yes, paired): "
              f"{start} (line {j})")
        seen_starts.add(j)
        if start is None:
            continue
        pinned = " taskset -c 0 " in start
        two = start.rstrip().endswith("-w 2")
        check(pinned == (not row.endswith("-free")),
              f"{row}: the server pinned only when not -free: {start}")
        check(two == ("-w2" in row), f"{row}: -w 2 exactly on the two-worker rows: {start}")
        if row == "fanout-1000-r1600-w1b":
            check(pinned and "-w 1 " in start and not two,
                  f"the A/A row's server is -w1's: pinned, one worker: {start}")
        check(f"start {server} fanout " in start, f"{row}: a fanout server: {start}")
        rate = re.search(r"-r(\d+)", row).group(1)
        check(f"-S fanout -c 1000 -r {rate} -s 64 -w 0.5 -d 2 --drain 1" in args,
              f"{row}: rcbench at {rate}/s, 64 B, full mode's times: {args}")
        check("taskset -c 1" in args, f"{row}: rcbench on CPU 1: {args}")
    rows_txt = open(os.path.join(out, "rows.txt")).read()
    check("fanout-1000-r1600-w2-free\troomcast\tno\t-w 2\n" in rows_txt and
          "fanout-1000-r1600\t\tyes\t\n" in rows_txt,
          "rows.txt names each row's servers, pinning and flags:\n" + rows_txt)
    check("jwt" not in "\n".join(lines) and "cluster" not in p.stderr,
          "the sections RC_BENCH_ROWS does not name stay out")

    # ---- the whole full plan: after a fresh=yes run, a server of its own again ----
    p, lines, _ = plan("full", servers="roomcast node")
    check(p.returncode == 0, f"full dry run, every row: exit {p.returncode}: {p.stderr[-1500:]}")
    fresh_rows = re.compile(r"fanout-1000-r(1600|5000)")
    idx = [i for i, line in enumerate(lines) if line.startswith("run ")]
    checked = 0
    for a, b in zip(idx, idx[1:]):
        row = lines[a].split()[2]
        if fresh_rows.match(row):
            checked += 1
            check(any(lines[k].startswith("start ") for k in range(a + 1, b)),
                  f"the run after {lines[a][:60]} is on another server: {lines[b][:60]}")
    check(checked >= 20, f"fresh runs followed by another run: {checked}")
    got = [r[1] for r in runs(lines, "node")]
    check("fanout-10-r2000" in got and "fanout-1000-r1600-w2" not in got and
          got.count("fanout-1000-r5000") == 3, f"node's rows: {got}")

    # ---- RC_BENCH_ROWS ---------------------------------------------------------------
    p, lines, _ = plan("full", "^echo-32-d1$", servers="roomcast node")
    got = runs(lines)
    check(p.returncode == 0 and got == [(s, "echo-32-d1", r) for s in ("roomcast", "node")
                                        for r in (1, 2, 3)],
          f"RC_BENCH_ROWS=^echo-32-d1$: that row only: {got}")
    check(not any(" fanout " in line for line in lines if line.startswith("start ")),
          "no fanout server started for no fanout row")
    p, lines, _ = plan("full", "([")
    check(p.returncode == 2 and "bad regex" in p.stderr and not runs(lines),
          f"a bad RC_BENCH_ROWS is refused: exit {p.returncode}, {p.stderr[-300:]}")

    # ---- quick mode ------------------------------------------------------------------
    p, lines, _ = plan("quick", "^fanout-1000-r")
    got = runs(lines)
    check(p.returncode == 0 and got == [
        ("roomcast", "fanout-1000-r100", 1), ("roomcast", "fanout-1000-r5000", 1),
        ("roomcast", "fanout-1000-r1600-w1", 1), ("roomcast", "fanout-1000-r1600-w2", 1),
        ("node", "fanout-1000-r100", 1), ("gorilla", "fanout-1000-r100", 1),
        ("lws", "fanout-1000-r100", 1)],
        f"quick: one run each, 5000/s and the pinned pair for roomcast only: {got}")

    # ---- steal: re-runs, bounded per row -----------------------------------------------
    # w2 run 1: 2.5 % -> again (0 %: kept). w1 run 2: 1.5, 3, 3 -> three re-runs,
    # the last 0 %. w1 run 3: 4 % with w1's three re-runs spent: kept, marked.
    # w1b run 1 at exactly the threshold (1 %) is not over it. Unnamed: 0 %.
    g = "fanout-1000-r1600-"
    dry_steal = (f"{g}w2.1.0=2.5 {g}w1.2.0=1.5 {g}w1.2.1=3 {g}w1.2.2=3 {g}w1.3.0=4 "
                 f"{g}w1b.1.0=1 {g}w2-free.3.0=7.25 {g}w2-free.3.1=0.5")
    p, lines, out = plan("full", "r1600-w", "roomcast", {"RC_BENCH_DRY_STEAL": dry_steal})
    check(p.returncode == 0, f"steal dry run exit {p.returncode}: {p.stderr[-1500:]}")
    got = runs(lines)
    want = []
    for rep in (1, 2, 3):
        for w in ("w1b", "w1", "w2", "w1-free", "w2-free"):
            n = 1 + {(1, "w2"): 1, (2, "w1"): 3, (3, "w2-free"): 1}.get((rep, w), 0)
            want += [("roomcast", g + w, rep)] * n
    check(got == want, f"steal: each re-run at once after the run it replaces: {got}")
    for i, line in enumerate(lines):
        if line.startswith("rerun "):
            nxt = lines[i + 1:i + 3]
            check(len(nxt) == 2 and nxt[0].startswith("start roomcast fanout") and
                  nxt[1].startswith("run roomcast " + line.split()[2] + " " + line.split()[3]),
                  f"a re-run on a server started for it: {line} -> {nxt}")
    reruns = [line for line in lines if line.startswith("rerun ")]
    check(reruns == [f"rerun roomcast {g}w2 1: steal 2.5 % > 1 %",
                     f"rerun roomcast {g}w1 2: steal 1.5 % > 1 %",
                     f"rerun roomcast {g}w1 2: steal 3 % > 1 %",
                     f"rerun roomcast {g}w1 2: steal 3 % > 1 %",
                     f"rerun roomcast {g}w2-free 3: steal 7.25 % > 1 %"],
          f"the re-runs and why: {reruns}")
    kept = [line for line in lines if line.startswith("kept ")]
    check(kept == [f"kept roomcast {g}w1 3: steal 4 % > 1 %"],
          f"w1's re-runs spent: run 3 kept: {kept}")
    path = os.path.join(out, "steal.tsv")
    tsv = open(path).read().splitlines() if os.path.exists(path) else None
    check(tsv == [f"roomcast\t{g}w2\t1\t0\t2.5\treplaced",
                  f"roomcast\t{g}w1\t2\t0\t1.5\treplaced",
                  f"roomcast\t{g}w1\t2\t1\t3\treplaced",
                  f"roomcast\t{g}w1\t2\t2\t3\treplaced",
                  f"roomcast\t{g}w1\t3\t0\t4\tkept",
                  f"roomcast\t{g}w2-free\t3\t0\t7.25\treplaced"], f"steal.tsv: {tsv}")

    # A higher threshold and no re-runs: nothing runs twice; 0 re-runs keeps and marks.
    p, lines, out = plan("full", "r1600-w", "roomcast", {"RC_BENCH_DRY_STEAL": dry_steal,
                                                        "RC_BENCH_STEAL_MAX": "8"})
    check(p.returncode == 0 and len(runs(lines)) == 15 and
          not open(os.path.join(out, "steal.tsv")).read(),
          f"RC_BENCH_STEAL_MAX=8: no run over it, none again: {len(runs(lines))} runs")
    p, lines, out = plan("full", "r1600-w", "roomcast", {"RC_BENCH_DRY_STEAL": dry_steal,
                                                        "RC_BENCH_STEAL_RERUNS": "0"})
    kept = [line for line in lines if line.startswith("kept ")]
    check(p.returncode == 0 and len(runs(lines)) == 15 and len(kept) == 4,
          f"RC_BENCH_STEAL_RERUNS=0: every run once, 4 kept over: {kept}")
    # The echo and unpaired fan-out rows never run again.
    p, lines, _ = plan("full", "^(echo-32-d1|fanout-1000-r1600)$", "roomcast",
                       {"RC_BENCH_DRY_STEAL": "echo-32-d1.1.0=50 fanout-1000-r1600.1.0=50"})
    check(p.returncode == 0 and len(runs(lines)) == 6 and "rerun" not in "\n".join(lines),
          f"only the paired rows are re-run for steal: {runs(lines)}")
    for var, val in (("RC_BENCH_STEAL_MAX", "1%"), ("RC_BENCH_STEAL_RERUNS", "-1"),
                     ("RC_BENCH_STEAL_RERUNS", "100")):
        p, lines, _ = plan("full", "r1600-w", "roomcast", {var: val})
        check(p.returncode == 2 and var in p.stderr and not runs(lines),
              f"{var}={val} refused: exit {p.returncode}, {p.stderr[-300:]}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

tally.done("ok   run.sh plan: servers=, pin=no, flags=, fresh=yes, paired order, RC_BENCH_ROWS, "
           "the A/A row, steal re-runs")
