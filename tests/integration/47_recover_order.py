"""47_recover_order - a recovering join gets one gap-free, duplicate-free
stream (scripts/chat.lua, python3-websockets): while a publisher hammers a
room, a client joins with `since` again and again, and every time it must
see `joined` first, then the replay and the live broadcasts as one run of
seqs since+1, since+2, ... with nothing missing and nothing twice
(README "Recovery"). The same for a join whose epoch is stale
(recovered:false), and for a join without since: `joined`, then live
traffic from joined.seq + 1. With a
held buffer of one frame (recover_hold = 1) an overflowing join is answered
recovered:false, never with a gap or a duplicate after `joined`. Memory and
SQLite stores, and the Redis bus and stream (a redis-server started here on
a free port); RC_WORKERS=1 and 3 (the room's owner is often another worker
than the joiner's)."""

import asyncio
import atexit
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import script, uniq  # noqa: E402
from rctest import Failure, check, eq, tmo  # noqa: E402

websockets = rctest.need_websockets()

CHAT = script("chat.lua")
MEM = ("-s", CHAT, "--history-size", "2000")
DB_DIR = rctest.scratch_dir("rc47-")
SQLITE = ("-s", CHAT, "--history", "sqlite:" + os.path.join(DB_DIR, "h.db"))
HOLD_CONF = rctest.write_in(DB_DIR, "hold1.conf.lua",
                            "recover_hold = 1\nhistory = { store = \"sqlite\", path = %r }\n" %
                            os.path.join(DB_DIR, "hold1.db"))
TINY_HOLD = ("-s", CHAT, "-c", HOLD_CONF)



def start_redis():
    """A real redis-server on a free port for the Redis bus and stream store
    case (killed at exit); None when redis-server is not installed."""
    if shutil.which("redis-server") is None:
        return None
    sk = socket.socket()
    sk.bind(("127.0.0.1", 0))
    port = sk.getsockname()[1]
    sk.close()
    d = rctest.scratch_dir("rc47r-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop():
        proc.kill()
        proc.wait()
    atexit.register(stop)  # registered after scratch_dir's removal: runs first
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return "redis://127.0.0.1:%d/0" % port
        except OSError:
            time.sleep(0.02)
    raise Failure("redis-server did not start")


JOINS = 50          # recovering joins per run
BURST, PAUSE = 4, 0.001  # the publisher: about 3000/s, in a thread of its own
LIVE_AFTER = 15     # live broadcasts each join must see after its `joined`


url = rctest.ws_url
run = rctest.run


async def recv_json(ws, timeout=10.0):
    return json.loads(await asyncio.wait_for(ws.recv(), tmo(timeout)))


class Publisher:
    """A member that broadcasts in small bursts, on a thread (and event loop)
    of its own so that joins land at any point of its stream, and drains its
    own copies (last: the newest seq it saw)."""

    def __init__(self, srv, room):
        self.srv, self.room = srv, room
        self.last = 0
        self.epoch = None
        self.stop = False
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.main, daemon=True)

    def main(self):
        try:
            asyncio.run(self.run())
        except BaseException as e:  # noqa: B902 - reported by the test
            self.error = e
            self.ready.set()

    async def run(self):
        async with websockets.connect(url(self.srv), max_size=None, compression=None,
                                      ping_interval=None, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "join", "room_id": self.room}))
            j = await recv_json(ws)
            eq(j["type"], "joined", "publisher joined")
            self.last, self.epoch = j["seq"], j["epoch"]

            async def drain():
                while True:
                    try:
                        m = json.loads(await ws.recv())
                    except websockets.ConnectionClosed:
                        return
                    if m.get("type") == "broadcast":
                        if m["seq"] != self.last + 1:
                            self.error = Failure("publisher: seq %d after %d" %
                                                 (m["seq"], self.last))
                        self.last = m["seq"]
            reader = asyncio.ensure_future(drain())
            n = 0
            while not self.stop:
                for _ in range(BURST):
                    n += 1
                    await ws.send(json.dumps({"type": "broadcast", "room_id": self.room,
                                              "content": "m%d" % n}))
                if n >= 200:
                    self.ready.set()
                await asyncio.sleep(PAUSE)
            # close with the reader still draining: a backlog of broadcasts
            # must not hold the close frame up
            await ws.close()
            await reader
        return n


async def one_join(srv, pub, rnd, stale_epoch=False, plain=False):
    """Joins with since (a few dozen behind the publisher's last seq) and
    returns (since, joined, seqs after it). Half of the joiners negotiate
    permessage-deflate (the held frames keep their compressed variant)."""
    since = max(0, pub.last - rnd.randint(0, 60))
    req = {"type": "join", "room_id": pub.room, "since": since}
    req["epoch"] = "stale0" if stale_epoch else pub.epoch
    if plain:
        req = {"type": "join", "room_id": pub.room}
    comp = "deflate" if rnd.random() < 0.5 else None
    # max_queue=None: the client keeps reading while it closes, so live
    # traffic queued ahead of the server's close frame does not stall it
    async with websockets.connect(url(srv), max_size=None, ping_interval=None,
                                  compression=comp, max_queue=None) as ws:
        await ws.send(json.dumps(req))
        first = await recv_json(ws)
        if first.get("type") != "joined":
            raise Failure("join since=%d: first message is %s (seq %s), not joined" %
                          (since, first.get("type"), first.get("seq")))
        seqs = []
        while not seqs or seqs[-1] < first["seq"] + LIVE_AFTER:
            m = await recv_json(ws)
            eq(m["type"], "broadcast", "after joined")
            seqs.append(m["seq"])
        return since, first, seqs


def consecutive(seqs, start, what):
    for i, s in enumerate(seqs):
        if s != start + i:
            raise Failure("%s: seq %d at position %d, want %d (a %s); got %s..." %
                          (what, s, i, start + i, "duplicate" if s < start + i else "gap",
                           seqs[max(0, i - 3):i + 3]))


async def hammer(srv, body, joins=JOINS, enough=None):
    room = uniq("rec")
    pub = Publisher(srv, room)
    pub.thread.start()
    loop = asyncio.get_running_loop()
    check(await loop.run_in_executor(None, pub.ready.wait, tmo(10)), "publisher started")
    rnd = random.Random(47)
    try:
        results = []
        for i in range(joins):
            check(pub.error is None, "publisher: %s" % pub.error)
            results.append(await body(pub, rnd, i))
            if enough is not None and i >= 39 and enough(results):
                break
        return results
    finally:
        pub.stop = True
        await loop.run_in_executor(None, pub.thread.join, tmo(10))
        check(pub.error is None, "publisher: %s" % pub.error)


def test_recover_gap_free_under_publishes(srv):
    async def body(pub, rnd, i):
        since, j, seqs = await one_join(srv, pub, rnd)
        check(j.get("recovered") is True, "join %d since=%d: %s" % (i, since, j))
        check(j["seq"] >= since, "joined.seq %d >= since %d" % (j["seq"], since))
        consecutive(seqs, since + 1, "join %d since=%d joined.seq=%d" % (i, since, j["seq"]))
        return j["seq"] - since
    replayed = run(hammer(srv, body))
    # the joins did recover something, and live traffic came on top
    check(sum(replayed) > 0, "something was replayed: %s" % replayed)


def test_stale_epoch_joined_then_live(srv):
    async def body(pub, rnd, i):
        since, j, seqs = await one_join(srv, pub, rnd, stale_epoch=True)
        eq(j.get("recovered"), False, "stale epoch")
        consecutive(seqs, j["seq"] + 1, "join %d (recovered:false) joined.seq=%d" % (i, j["seq"]))
    run(hammer(srv, body, joins=10))


def test_plain_join_joined_then_live(srv):
    """A join without since: `joined` (the room's seq N) first, then N+1..."""
    async def body(pub, rnd, i):
        _, j, seqs = await one_join(srv, pub, rnd, plain=True)
        check("recovered" not in j, "no recovered without since: %s" % j)
        consecutive(seqs, j["seq"] + 1, "plain join %d joined.seq=%d" % (i, j["seq"]))
    run(hammer(srv, body, joins=10))


test_recover_gap_free_under_publishes_sqlite = rctest.server(*SQLITE)(
    lambda srv: test_recover_gap_free_under_publishes(srv))


REDIS = start_redis() if "RC_TEST_ONLY" not in os.environ or \
    "redis" in os.environ["RC_TEST_ONLY"] else None
if REDIS is not None:
    test_recover_gap_free_under_publishes_redis = rctest.server(
        "-s", CHAT, "--history-size", "2000", "--redis", REDIS)(
        lambda srv: test_recover_gap_free_under_publishes(srv))


def test_overflow_says_recovered_false(srv):
    """recover_hold = 1 (SQLite): a read that overlaps two or more live
    broadcasts overflows the held buffer; that join says recovered:false and
    goes on live, without duplicates. The others recover gap-free."""
    async def body(pub, rnd, i):
        since, j, seqs = await one_join(srv, pub, rnd)
        if j.get("recovered") is True:
            consecutive(seqs, since + 1, "join %d since=%d" % (i, since))
            return "recovered"
        eq(j.get("recovered"), False, "recovered")
        check(seqs[0] > j["seq"], "live after joined.seq: %d > %d" % (seqs[0], j["seq"]))
        for a, b in zip(seqs, seqs[1:]):
            check(b > a, "increasing after an overflow: %d then %d" % (a, b))
        return "overflow"
    # Each join may go either way (a read that overlaps fewer than two
    # broadcasts recovers); at least 40 joins, up to 300 until one overflowed.
    got = run(hammer(srv, body, joins=300, enough=lambda r: "overflow" in r))
    print("recover_hold=1: %d recovered, %d overflowed" %
          (got.count("recovered"), got.count("overflow")), flush=True)
    check("overflow" in got, "some join overflowed the held buffer of 1 (SQLite reads)")


test_overflow_says_recovered_false.rc_server = TINY_HOLD


if __name__ == "__main__":
    rctest.main(globals(), default_args=MEM, per_test_limit=90.0)
