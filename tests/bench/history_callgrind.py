#!/usr/bin/python3
"""history_callgrind.py - instructions (Ir) per message of a large history read.

roomcast -w 1 -s scripts/chat.lua --history sqlite:FILE under
`valgrind --tool=callgrind`; room "big" gets SIZE-byte broadcasts (1000 by
default), committed, then two warm-up reads. The counters are zeroed
(callgrind_control -z), client A makes R history reads of `limit` messages,
and the counters are dumped (-d): every thread counted (the worker's Lua
handler and send, the store's reader thread: SQLite and the answer's
building). Done twice: `since=0` (oldest first, the store reads ascending)
and no since (`newest`, paging backwards: the store reads descending). A
third interval makes R `presence` round trips instead, for the per-request
cost that is not the messages'. Prints one JSON line:
Ir per message read = (Ir of the R reads) / (R * messages per answer).

The client checks every answer: a text frame holding a JSON object whose
`messages` array has the expected length and seqs (1..N or the newest N).

usage: history_callgrind.py [--build DIR] [--size BYTES] [--messages N] [--reads R]
                            [--keep DIR]
exit: 0, 1 on a broken run, 77 when valgrind or the binary is missing
"""
import argparse
import asyncio
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from callgrind_budget import free_port, stop, wait_port  # noqa: E402


def dump_total(pid, out, before):
    """Dumps the counters of `pid` and returns the new dump's Ir total."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        files = set(glob.glob(out + "*")) - before
        for f in files:
            with open(f) as fh:
                m = re.search(r"^(?:summary|totals):\s+(\d+)", fh.read(), re.M)
            if m:
                return int(m.group(1)), files
        time.sleep(0.2)
    raise RuntimeError("no callgrind dump appeared")


def zero(pid):
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)


async def history(ws, req, want):
    await ws.send(json.dumps(req))
    while True:
        m = json.loads(await ws.recv())
        if m.get("type") == "history":
            break
    seqs = [x["seq"] for x in m["messages"]]
    if seqs != want:
        raise RuntimeError("history answer: %d messages, seqs %s..%s, want %d from %d" %
                           (len(seqs), seqs[:1], seqs[-1:], len(want), want[0]))


async def run(a, port, pid, out):
    url = "ws://127.0.0.1:%d/ws" % port
    body = "x" * a.size
    res = {"size": a.size, "messages": a.messages, "reads": a.reads}
    async with websockets.connect(url, max_size=None, compression=None) as c:
        await c.send(json.dumps({"type": "join", "room_id": "big"}))
        await c.recv()
        for _ in range(a.messages):
            await c.send(json.dumps({"type": "broadcast", "room_id": "big", "content": body}))
        for _ in range(a.messages):
            await c.recv()
        await asyncio.sleep(2.0)  # the writer commits (flush_ms), even under valgrind
        asc = {"type": "history", "room_id": "big", "since": 0, "limit": a.messages}
        newest = {"type": "history", "room_id": "big", "limit": a.messages}
        want = list(range(1, a.messages + 1))
        for req in (asc, newest, asc, newest):  # warm-up: JIT, caches, the block cache
            await history(c, req, want)
        seen = set(glob.glob(out + "*"))
        for label, req in (("asc", asc), ("newest", newest), ("presence", None)):
            zero(pid)
            for _ in range(a.reads):
                if req is None:
                    await c.send(json.dumps({"type": "presence", "room_id": "big"}))
                    await c.recv()
                else:
                    await history(c, req, want)
            ir, files = dump_total(pid, out, seen)
            seen |= files
            if req is None:
                res["ir_per_presence"] = round(ir / a.reads, 1)
            else:
                res["ir_per_msg_" + label] = round(ir / (a.reads * a.messages), 1)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--reads", type=int, default=10)
    ap.add_argument("--keep", metavar="DIR")
    a = ap.parse_args()
    exe = os.path.join(os.path.abspath(a.build), "roomcast")
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("history_callgrind: SKIP, valgrind not installed")
        return 77
    if not os.access(exe, os.X_OK):
        print("history_callgrind: SKIP, %s not built" % exe)
        return 77
    tmp = a.keep or tempfile.mkdtemp(prefix="rc-histcg-")
    os.makedirs(tmp, exist_ok=True)
    port = free_port()
    out = os.path.join(tmp, "callgrind.hist.out")
    log = open(os.path.join(tmp, "server.log"), "w")
    srv = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
         "--smc-check=all-non-file", "--dump-instr=no", "--collect-jumps=no",
         exe, "-s", os.path.join(ROOT, "scripts", "chat.lua"),
         "--history", "sqlite:" + os.path.join(tmp, "h.db"),
         "-b", "127.0.0.1", "-p", str(port), "-w", "1", "--log-level", "warn", "--admin", "off"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_port(port, srv):
            raise RuntimeError("roomcast under valgrind did not listen (see %s)" % log.name)
        res = asyncio.run(run(a, port, srv.pid, out))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print("history_callgrind: FAIL %s" % e)
        return 1
    finally:
        stop(srv)
        log.close()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
