#!/usr/bin/python3
"""rcbench_lockstep_test - rcbench --lockstep K keeps at most K publishes
outstanding, against a room server that takes its time.

The server here is python3-websockets (asyncio): every message from any
connection is broadcast to every connection (the sender included), one
message at a time, each after a 10 ms pause. A publish is outstanding from
its arrival until the server starts sending it to the last member; a member
cannot receive it earlier, so a publisher in lockstep (the next K only once
every member has received every publish before) never has more than K
outstanding, and K when the K of a step arrive in one write.

  1. --lockstep 3, 30 publishes, 5 members: every delivery arrives (150),
     nothing skipped, the JSON says lockstep 3, and the most outstanding
     publishes seen is exactly 3;
  2. the same at -r 2000 without --lockstep (open loop): more than 3
     outstanding (the server's pause lets them pile up), so the check in 1
     can fail;
  3. --lockstep outside fanout, or 0, is refused (exit 2, a reason).

usage: rcbench_lockstep_test.py --build DIR     exit 0 pass, 1 fail, 77 skip
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import rctest  # noqa: E402

try:
    import websockets
except ImportError:
    websockets = None

SKIP = 77
DELAY = 0.01
MEMBERS = 5


class Room:
    """The server's state, touched only on its event loop's thread."""

    def __init__(self):
        self.members = []
        self.queue = None
        self.received = 0
        self.started = 0  # publishes whose send to the last member began
        self.max_outstanding = 0

    def reset(self):
        self.received = self.started = self.max_outstanding = 0

    async def handler(self, ws, path=None):
        self.members.append(ws)
        try:
            async for msg in ws:
                self.received += 1
                self.max_outstanding = max(self.max_outstanding, self.received - self.started)
                self.queue.put_nowait(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.members.remove(ws)

    async def broadcaster(self):
        while True:
            msg = await self.queue.get()
            await asyncio.sleep(DELAY)
            members = list(self.members)
            for i, m in enumerate(members):
                if i == len(members) - 1:
                    self.started += 1
                try:
                    await m.send(msg)
                except websockets.ConnectionClosed:
                    pass


def serve(room, ready):
    async def main():
        room.queue = asyncio.Queue()
        async with websockets.serve(room.handler, "127.0.0.1", 0) as srv:
            ready["port"] = srv.sockets[0].getsockname()[1]
            ready["event"].set()
            await room.broadcaster()

    asyncio.run(main())


def rcbench(build, port, *args):
    cmd = [os.path.join(build, "tests", "bench", "rcbench"), "-q", "--json", "-p", str(port),
           "-S", "fanout", "-c", str(MEMBERS), "-w", "0", "-d", "20", "--drain", "5", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    exe = os.path.join(a.build, "tests", "bench", "rcbench")
    if not os.access(exe, os.X_OK):
        print(f"SKIP: {exe} not built")
        return SKIP
    if websockets is None:
        print("SKIP: python3-websockets not installed")
        return SKIP
    tally = rctest.Tally()
    room = Room()
    ready = {"event": threading.Event()}
    threading.Thread(target=serve, args=(room, ready), daemon=True).start()
    if not ready["event"].wait(10):
        print("FAIL: the websockets server did not start")
        return 1
    port = ready["port"]

    # 1. lockstep
    r = rcbench(a.build, port, "-n", "30", "--lockstep", "3")
    tally.check(r.returncode == 0, f"rcbench --lockstep 3 exits 0 ({r.returncode})"
                + (f": {r.stderr.strip()[-300:]}" if r.returncode else ""))
    res = json.loads(r.stdout) if r.returncode == 0 else {}
    tally.check(res.get("sent") == 30 and res.get("received") == 30 * MEMBERS,
                f"30 publishes, {30 * MEMBERS} deliveries (sent {res.get('sent')}, "
                f"received {res.get('received')})")
    tally.check(res.get("skipped") == 0 and res.get("lockstep") == 3,
                f"nothing skipped, JSON lockstep 3 ({res.get('skipped')}, {res.get('lockstep')})")
    tally.check(room.max_outstanding == 3,
                f"at most 3 publishes outstanding, 3 at once ({room.max_outstanding})")

    # 2. open loop: the same measure sees the backlog
    room.reset()
    r = rcbench(a.build, port, "-n", "30", "-r", "2000")
    tally.check(r.returncode == 0, f"rcbench -r 2000 exits 0 ({r.returncode})")
    tally.check(room.max_outstanding > 3,
                f"open loop: more than 3 outstanding ({room.max_outstanding})")

    # 3. bad use
    for args, why in ((["--lockstep", "0"], "1..1000"), (["--lockstep", "x"], "bad lockstep")):
        r = rcbench(a.build, port, *args)
        tally.check(r.returncode == 2 and why in r.stderr,
                    f"{' '.join(args)}: exit 2, '{why}' ({r.returncode}: {r.stderr.strip()})")
    r = subprocess.run([exe, "-S", "echo", "-p", str(port), "--lockstep", "2"],
                       capture_output=True, text=True, timeout=30)
    tally.check(r.returncode == 2 and "fanout only" in r.stderr,
                f"-S echo --lockstep 2: exit 2, 'fanout only' ({r.returncode}: {r.stderr.strip()})")

    tally.done("ok   rcbench --lockstep: at most K outstanding, open loop more, bad use refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
