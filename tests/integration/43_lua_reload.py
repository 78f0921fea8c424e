"""43_lua_reload - hot reload under load. 200 clients in 20 rooms broadcast
continuously through a temp copy of scripts/chat.lua; the copy is changed so
broadcasts carry a new field and the server gets SIGHUP (the file watcher
reloads too). Asserted: no connection drops, no message is lost or reordered
(each room's seq is contiguous at every receiver and every receiver gets
every message sent to its room), the new field appears after the swap,
"reload: generation N" is logged by every worker. Then a broken script:
refused ("reload failed" logged), the old behaviour continues. Prints the
reload pause (SIGHUP to the last worker's new generation) and the longest
delivery gap seen by a client around it. Also: the file watcher reloads
on a change of a Lua file in the script's directory and ignores other files
that come and go there."""

import asyncio
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import script, wait_log  # noqa: E402
from rctest import Failure, check, eq, tmo  # noqa: E402

websockets = rctest.need_websockets()

NCLIENTS = int(os.environ.get("RC_RELOAD_CLIENTS", "200"))
NROOMS = 20
INTERVAL = 0.25  # seconds between broadcasts of one client

_dir = rctest.scratch_dir("rc43_")
PATH = os.path.join(_dir, "chat.lua")
with open(script("chat.lua")) as f:
    ORIGINAL = f.read()
MARK = "enc(util.sender(conn)) .. '}'"
assert MARK in ORIGINAL, "chat.lua changed: update 43_lua_reload's patch point"
CHANGED = ORIGINAL.replace(MARK, "enc(util.sender(conn)) .. ',\"v\":2}'")
BROKEN = CHANGED + "\nthis is not lua (\n"


def write(text):
    tmp = PATH + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, PATH)


write(ORIGINAL)
ARGS = ("-s", PATH)


def workers(srv):
    wait_log(srv, "roomcast started:")
    m = re.search(r"started: (\d+) worker", "\n".join(srv.log()))
    return int(m.group(1)) if m else 1


class Stats:
    def __init__(self):
        self.sent = {}      # room -> count
        self.recv = {}      # (client, room) -> list of (seq, sender, n, v, t)
        self.closed = []


async def client(srv, i, st, stop, ready, go):
    room = "reload%d" % (i % NROOMS)
    user = "u%d" % i
    async with websockets.connect(rctest.ws_url(srv), ping_interval=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "join", "room_id": room, "user_id": user}))
        m = json.loads(await ws.recv())
        if m.get("type") != "joined":
            raise Failure("join failed: %r" % m)
        got = st.recv.setdefault((i, room), [])
        ready.append(i)

        async def reader():
            async for raw in ws:
                m = json.loads(raw)
                if m.get("type") != "broadcast":
                    raise Failure("client %d: unexpected %r" % (i, m))
                got.append((m["seq"], m["sender"], m["content"], m.get("v"), time.monotonic()))

        rt = asyncio.ensure_future(reader())
        await go.wait()
        n = 0
        await asyncio.sleep((i % 50) * INTERVAL / 50)
        while not stop.is_set():
            await ws.send(json.dumps({"type": "broadcast", "room_id": room,
                                      "content": "%s:%d" % (user, n)}))
            st.sent[room] = st.sent.get(room, 0) + 1
            n += 1
            await asyncio.sleep(INTERVAL)
        await asyncio.sleep(tmo(1.5))  # let the last broadcasts arrive
        rt.cancel()
        await ws.close()
        if ws.close_code != 1000:
            st.closed.append((i, ws.close_code))


def test_reload_under_load(srv):
    write(ORIGINAL)
    nw = workers(srv)
    base = {}
    st = Stats()
    timeline = {}

    async def main():
        stop, go = asyncio.Event(), asyncio.Event()
        ready = []
        tasks = [asyncio.ensure_future(client(srv, i, st, stop, ready, go))
                 for i in range(NCLIENTS)]
        t0 = time.monotonic()
        while len(ready) < NCLIENTS:
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()
            if time.monotonic() - t0 > tmo(30):
                raise Failure("only %d of %d clients joined" % (len(ready), NCLIENTS))
            await asyncio.sleep(0.05)
        go.set()
        await asyncio.sleep(1.5)
        # 1. a changed script + SIGHUP
        base["ok"] = len([l for l in srv.log() if "reload: generation" in l])
        write(CHANGED)
        timeline["hup"] = time.monotonic()
        srv.proc.send_signal(signal.SIGHUP)
        while len([l for l in srv.log() if "reload: generation" in l]) < base["ok"] + nw:
            if time.monotonic() - timeline["hup"] > tmo(10):
                raise Failure("no 'reload: generation' from %d workers" % nw)
            await asyncio.sleep(0.005)
        timeline["swapped"] = time.monotonic()
        await asyncio.sleep(1.5)
        # 2. a broken script: refused, the changed one keeps running
        await asyncio.sleep(0.5)  # the watcher's own reload of CHANGED
        base["fail"] = len([l for l in srv.log() if "reload failed" in l])
        write(BROKEN)
        srv.proc.send_signal(signal.SIGHUP)
        timeline["broken"] = time.monotonic()
        while len([l for l in srv.log() if "reload failed" in l]) < base["fail"] + nw:
            if time.monotonic() - timeline["broken"] > tmo(10):
                raise Failure("no 'reload failed' from %d workers" % nw)
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.5)
        timeline["end"] = time.monotonic()
        stop.set()
        await asyncio.gather(*tasks)

    rctest.run(main(), 120)
    write(ORIGINAL)

    eq(st.closed, [], "connections closed abnormally")
    members = {}
    for (i, room) in st.recv:
        members.setdefault(room, []).append(i)
    max_gap = 0.0
    new_after = 0
    for (i, room), got in st.recv.items():
        seqs = [g[0] for g in got]
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            bad = next(k for k in range(1, len(seqs)) if seqs[k] != seqs[k - 1] + 1)
            raise Failure("client %d room %s: seq %d after %d" % (i, room, seqs[bad],
                                                                   seqs[bad - 1]))
        eq(len(got), st.sent[room], "client %d: messages received of those sent to %s" %
           (i, room))
        # per sender, the contents arrive in order (1, 2, 3, ...)
        last = {}
        for _, sender, content, v, t in got:
            n = int(content.split(":")[1])
            check(n == last.get(sender, -1) + 1, "client %d: %s out of order" % (i, content))
            last[sender] = n
        # the new field: absent before SIGHUP, present once every worker swapped
        for _, _, _, v, t in got:
            if t < timeline["hup"]:
                check(v is None, "client %d: new field before the reload" % i)
            elif t > timeline["swapped"] + 0.5:
                eq(v, 2, "client %d: new field after the swap (and after the failed reload)" % i)
                new_after += 1
        ts = [g[4] for g in got if timeline["hup"] - 1 < g[4] < timeline["swapped"] + 1]
        for a, b in zip(ts, ts[1:]):
            max_gap = max(max_gap, b - a)
    check(new_after > 0, "no message seen after the swap")
    base_ok, base_fail = base["ok"], base["fail"]
    gens = wait_log(srv, "reload: generation", base_ok + nw)
    fails = wait_log(srv, "reload failed", base_fail + nw)
    check(any("chat.lua:" in l for l in fails[base_fail:]), "failure names file:line: %s" %
          fails[-1])
    total = sum(st.sent.values())
    print("    %d clients, %d workers: %d broadcasts, %d deliveries; reload pause (SIGHUP to "
          "all %d swapped) %.1f ms; longest delivery gap near the swap %.0f ms (interval %.0f "
          "ms); server: %s" % (NCLIENTS, nw, total, sum(len(g) for g in st.recv.values()), nw,
                               (timeline["swapped"] - timeline["hup"]) * 1000, max_gap * 1000,
                               INTERVAL * 1000 / NCLIENTS * NROOMS,
                               "; ".join(l.split("] ", 1)[-1] for l in gens[base_ok:base_ok + nw])),
          flush=True)


_wdir = rctest.scratch_dir("rc43w_")
with open(script("echo.lua")) as f:
    ECHO = f.read()
WPATH = rctest.write_in(_wdir, "echo.lua", ECHO)


def test_file_watcher_reloads_on_lua_changes_only(srv):
    """The watcher (no SIGHUP) reloads when a Lua file of the script's
    directory changes, and not when other files come and go there."""
    nw = workers(srv)
    changed = lambda: len([l for l in srv.log() if "script files changed" in l])  # noqa: E731
    gens = lambda: len([l for l in srv.log() if "reload: generation" in l])  # noqa: E731
    c0, g0 = changed(), gens()
    with srv.connect() as c:
        # unrelated files: a log being written, a temp file created and removed
        for i in range(3):
            with open(os.path.join(_wdir, "server.log"), "a") as f:
                f.write("line %d\n" % i)
            tmp = os.path.join(_wdir, ".swp%d" % i)
            open(tmp, "w").close()
            os.unlink(tmp)
            time.sleep(0.15)
        time.sleep(1.0)  # ev_stat polls; give it time to see (and ignore) them
        eq(changed(), c0, "reloads triggered by non-Lua files")
        # a new helper module next to the script is a Lua change
        with open(os.path.join(_wdir, "helper.lua"), "w") as f:
            f.write("return {}\n")
        wait_log(srv, "reload: generation", count=g0 + nw, timeout=10)
        check(changed() > c0, "the watcher logged the change")
        # the connection survived the reload and still echoes
        c.send_frame(rctest.OP_TEXT, "still here")
        c.expect_message(rctest.OP_TEXT, "still here")
        c.finish()
    os.unlink(os.path.join(_wdir, "helper.lua"))
    os.unlink(os.path.join(_wdir, "server.log"))


if __name__ == "__main__":
    # once per server: the test itself runs long and reloads several times
    rctest.main(None, cases=[
        rctest.Case("test_reload_under_load", test_reload_under_load, ARGS, repeat=1),
        rctest.Case("test_file_watcher_reloads_on_lua_changes_only",
                    test_file_watcher_reloads_on_lua_changes_only, ("-s", WPATH), repeat=1)])
