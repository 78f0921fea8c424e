"""31_slow_consumer - one member of a big room stops reading while the room
floods (scripts/fanout.lua: every message is published to room "bench").
The others must receive everything, the policy is applied to the slow one
(drop: it misses messages but stays connected; close: 1008), and the
server's memory stays bounded. Runs with -w 1 and -w 3."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, tmo  # noqa: E402

import websockets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FANOUT = os.path.join(HERE, "..", "..", "scripts", "fanout.lua")

MEMBERS = 500
MESSAGES = 200
SIZE = 1024
BATCH = 5          # messages per tick: a paced flood the readers can follow
TICK = 0.1
# Soft limit (32K) exceeded for 1 s trips the policy; a reading member's queue
# never holds more than a tick's worth, the stalled one grows without end.
CONF = """
max_message = "16K"
sndbuf = "8K"
sendq_limit = "1M"
sendq_soft_limit = "32K"
sendq_soft_seconds = 1
slow_consumer = "%s"
close_timeout = 30   -- the stalled member reads its 1008 only after the flood
"""


def conf(policy):
    import tempfile
    fd, path = tempfile.mkstemp(prefix="rc-slow-", suffix=".conf.lua")
    with os.fdopen(fd, "w") as f:
        f.write(CONF % policy)
    return path


DROP_CONF = conf("drop")
CLOSE_CONF = conf("close")


def latest_script():
    """fanout.lua with the room's policy set from Lua to "latest"."""
    import tempfile
    fd, path = tempfile.mkstemp(prefix="rc-latest-", suffix=".lua")
    with os.fdopen(fd, "w") as f:
        f.write('local rc = require("roomcast")\n'
                'local room = rc.room("bench")\n'
                'assert(room:set_policy("latest"))\n'
                'return {\n'
                '  decode_json = false,\n'
                '  on_connect = function(conn) conn:join("bench") end,\n'
                '  on_message = function(_, data, is_binary) room:publish(data, {binary = is_binary}) end,\n'
                '}\n')
    return path


LATEST_LUA = latest_script()
RSS_BOUND_MB = 400 if rctest.SANITIZED else 150


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def slow_member(srv):
    """A raw member that never reads, with a tiny receive buffer."""
    c = srv.raw(rcvbuf=4096)
    c.upgrade("/ws")
    return c


def read_ids(slow):
    """The message numbers a stalled member gets once it reads again."""
    got = []
    try:
        while True:
            f = slow.recv_frame(timeout=1.0)
            if f.opcode == rctest.OP_BINARY:
                got.append(int(f.payload[:8]))
    except (rctest.Timeout, rctest.Closed):
        pass
    return got


async def run_flood(srv):
    members = []
    for _ in range(MEMBERS - 1):
        members.append(await websockets.connect(rctest.ws_url(srv), max_size=None, ping_interval=None,
                                                compression=None))
    slow = slow_member(srv)
    await asyncio.sleep(0.2)
    counts = [0] * len(members)

    async def reader(k, ws):
        while counts[k] < MESSAGES:
            await ws.recv()
            counts[k] += 1

    tasks = [asyncio.create_task(reader(k, ws)) for k, ws in enumerate(members)]
    pub = members[0]
    for i in range(MESSAGES):
        payload = b"%08d" % i + b"x" * (SIZE - 8)
        await pub.send(payload)
        if i % BATCH == BATCH - 1:
            await asyncio.sleep(TICK)
    peak = 0.0
    try:
        done = asyncio.gather(*tasks)
        while True:
            peak = max(peak, rss_mb(srv.proc.pid))
            try:
                await asyncio.wait_for(asyncio.shield(done), 0.2)
                break
            except asyncio.TimeoutError:
                pass
    except Exception:
        raise
    eq(min(counts), MESSAGES, "messages received by every reading member")
    check(peak < RSS_BOUND_MB, "server RSS %.1f MB under %d MB" % (peak, RSS_BOUND_MB))
    for ws in members:
        await ws.close()
    return slow


def test_drop_policy_keeps_others_on_time(srv):
    slow = rctest.run(run_flood(srv), 120)
    # The slow member is still connected (drop policy) and missed messages.
    slow.sock.setblocking(True)
    got = read_ids(slow)
    check(len(got) < MESSAGES, "slow member missed messages under drop (got %d)" % len(got))
    # drop skips what comes once it is over the limit: the newest never arrives
    check(not got or got[-1] != MESSAGES - 1, "under drop the newest message is dropped")
    check(srv.alive(), "server alive")
    slow.close()


@rctest.server("-c", DROP_CONF, "-s", LATEST_LUA, "--admin", "off")
def test_latest_policy_keeps_the_newest_message(srv):
    slow = rctest.run(run_flood(srv), 120)
    got = read_ids(slow)
    check(len(got) < MESSAGES, "the stalled member lost older messages (got %d)" % len(got))
    check(got and got[-1] == MESSAGES - 1,
          "the newest message is the last one it gets (got %d: %r)" % (len(got), got[-12:]))
    check(got == sorted(got), "what it gets stays in order")
    slow.close()


@rctest.server("-c", CLOSE_CONF, "-s", FANOUT, "--admin", "off")
def test_close_policy_closes_the_slow_one_with_1008(srv):
    slow = rctest.run(run_flood(srv), 120)
    code = None
    try:
        while True:
            f = slow.recv_frame(timeout=tmo(5))
            if f.opcode == rctest.OP_CLOSE:
                code = int.from_bytes(f.payload[:2], "big")
                break
    except (rctest.Timeout, rctest.Closed):
        pass
    eq(code, 1008, "close code for the slow consumer")
    slow.close()


if __name__ == "__main__":
    try:
        rctest.main(globals(), default_args=("-c", DROP_CONF, "-s", FANOUT, "--admin", "off"),
                    per_test_limit=240.0)
    finally:
        os.unlink(DROP_CONF)
        os.unlink(CLOSE_CONF)
        os.unlink(LATEST_LUA)
