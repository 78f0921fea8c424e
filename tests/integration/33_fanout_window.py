"""33_fanout_window - fan-out coalescing (fanout_delay, issue 14 goal 4).

With a window on, the room messages that reach a worker within the window
after a fan-out write wait for its end and go out together: every member
still gets every message, in seq order, but the server writes each member
once per window (the fanout_flushes_total counter: exactly one wake per
held member, against 19 deliveries each). A reply is not held: the
publisher's presence answer comes back while the other members' messages
are still waiting. SIGTERM's drain writes what is held (the window is far
longer than the drain), and a slow consumer is still closed 1008 under the
close policy. fanout_delay is reloadable: SIGHUP turns the window on (0 to
20 ms) and off again, counted on /metrics, and a window open at the SIGHUP
ends as it was. Runs with -w 1 and -w 3 (RC_WORKERS)."""

import asyncio
import itertools
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, tmo, ws_join, ws_next  # noqa: E402
from rcadmin import admin_port, metrics, total  # noqa: E402

import websockets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHAT = os.path.join(HERE, "..", "..", "scripts", "chat.lua")
# Long against a reply's round trip (milliseconds) and the sends of one
# burst, short enough to keep the suite quick.
WINDOW = 1.5 * rctest.SLOW
ARGS = ("-s", CHAT, "--fanout-delay", "%g" % WINDOW, "--admin", "127.0.0.1:0")

MEMBERS = 6
HELD = 19  # messages sent while the window is open
RUN = itertools.count()


async def broadcasts(ws, n, timeout):
    return [(await ws_next(ws, "broadcast", timeout))["content"] for _ in range(n)]


def buffered(ws):
    """Messages the client has received and not yet read (no waiting)."""
    return len(ws.messages) if hasattr(ws, "messages") else ws.messages_queue_size()


async def open_window(srv, room, users, window, snap=None):
    """Members joined, and one broadcast seen by all of them: each worker
    with members has just written a fan-out, so its window is open. Then
    snap() (a /metrics snapshot). A round slower than a quarter of the
    window (a loaded machine) could let a window end before the test's
    burst: it waits for every window to end and tries again."""
    members = [await ws_join(srv, room, u) for u in users]
    for _ in range(3):
        t = time.monotonic()
        await members[0].send(json.dumps({"type": "broadcast", "room_id": room,
                                          "content": "c0"}))
        for ws in members:
            eq(await broadcasts(ws, 1, tmo(window + 5)), ["c0"], "the first broadcast")
        got = snap() if snap else None
        if time.monotonic() - t < window / 4:
            return members, got
        await asyncio.sleep(window + 0.3)
    raise rctest.Failure("three rounds of one broadcast took over %.2fs each" % (window / 4))


def test_window_holds_fanout_and_writes_each_member_once(srv):
    port = admin_port(srv)
    room = "win-%d-%d" % (os.getpid(), next(RUN))

    async def main():
        members, m0 = await open_window(srv, room, ["u%d" % i for i in range(MEMBERS)], WINDOW,
                                        lambda: metrics(port))
        pub, others = members[0], members[1:]
        t0 = time.monotonic()
        for n in range(1, HELD + 1):
            await pub.send(json.dumps({"type": "broadcast", "room_id": room,
                                       "content": "c%d" % n}))
        await pub.send(json.dumps({"type": "presence", "room_id": room, "id": 7}))
        # The reply is not held: it comes while the window is still open
        # (with the publisher's own held messages queued before it).
        early = []
        while True:
            m = json.loads(await asyncio.wait_for(pub.recv(), tmo(WINDOW + 5)))
            if m.get("type") == "presence":
                break
            if m.get("type") == "broadcast":
                early.append(m["content"])
        waited = time.monotonic() - t0
        eq(m.get("id"), 7, "presence reply id")
        check(waited < WINDOW / 2, "the reply took %.3fs: held by the %gs window?" %
              (waited, WINDOW))
        await asyncio.sleep(0.05)  # time for held frames to arrive, were they not held
        for k, ws in enumerate(others, 1):
            eq(buffered(ws), 0, "messages member %d got before the window ended" % k)
        want = ["c%d" % n for n in range(1, HELD + 1)]
        rest = await broadcasts(pub, HELD - len(early), tmo(WINDOW + 10))
        eq(early + rest, want, "the publisher's messages")
        for k, ws in enumerate(others, 1):
            eq(await broadcasts(ws, HELD, tmo(WINDOW + 10)), want, "member %d's messages" % k)
        m1 = metrics(port)
        delivered = total(m1, "roomcast_msgs_out_total") - total(m0, "roomcast_msgs_out_total")
        woken = (total(m1, "roomcast_fanout_flushes_total") -
                 total(m0, "roomcast_fanout_flushes_total"))
        check(delivered >= HELD * MEMBERS, "deliveries %d >= %d" % (delivered, HELD * MEMBERS))
        # One write per held member at its window's end (the publisher may
        # have been written early by its reply): 5 or 6 writes for 114
        # deliveries.
        lo, hi = MEMBERS - 1, MEMBERS
        check(lo <= woken <= hi, "window flushes %d, want %d..%d (burst took %.3fs)" %
              (woken, lo, hi, waited))
        for ws in members:
            await ws.close()

    rctest.run(main(), 60)


def test_quiet_room_is_not_held(srv):
    """After a quiet period longer than the window a broadcast is written
    at once: no window flush for it."""
    port = admin_port(srv)
    room = "quiet-%d-%d" % (os.getpid(), next(RUN))

    async def main():
        members = [await ws_join(srv, room, "q%d" % i) for i in range(3)]
        await asyncio.sleep(WINDOW + 0.2)  # every earlier window has ended
        m0 = metrics(port)
        await members[0].send(json.dumps({"type": "broadcast", "room_id": room,
                                          "content": "solo"}))
        for ws in members:
            eq(await broadcasts(ws, 1, tmo(5)), ["solo"], "the broadcast")
        await asyncio.sleep(WINDOW + 0.2)
        woken = (total(metrics(port), "roomcast_fanout_flushes_total") -
                 total(m0, "roomcast_fanout_flushes_total"))
        eq(woken, 0, "window flushes for a lone broadcast")
        for ws in members:
            await ws.close()

    rctest.run(main(), 60)


def test_drain_writes_held_messages(_srv):
    """SIGTERM while messages are held (window 30 s): every member gets
    them, then close 1001, and the server is gone long before the window
    would have ended."""
    window = 30.0
    with rctest.Server(("-s", CHAT, "--fanout-delay", "%g" % window, "--admin", "127.0.0.1:0",
                        "--drain-time", "0.2")).start() as srv:
        port = admin_port(srv)

        async def main():
            members, _ = await open_window(srv, "drain", ["d%d" % i for i in range(MEMBERS)],
                                           window)
            base = total(metrics(port), "roomcast_msgs_out_total")
            for n in range(1, HELD + 1):
                await members[0].send(json.dumps({"type": "broadcast", "room_id": "drain",
                                                  "content": "c%d" % n}))
            # queued for everyone (held), then the signal
            deadline = time.monotonic() + tmo(10)
            while total(metrics(port), "roomcast_msgs_out_total") - base < HELD * MEMBERS:
                check(time.monotonic() < deadline, "deliveries never reached the queues")
                await asyncio.sleep(0.02)
            t0 = time.monotonic()
            srv.proc.send_signal(15)
            want = ["c%d" % n for n in range(1, HELD + 1)]
            for k, ws in enumerate(members):
                eq(await broadcasts(ws, HELD, tmo(10)), want, "member %d's held messages" % k)
                try:
                    await asyncio.wait_for(ws.recv(), tmo(10))
                    raise rctest.Failure("member %d: a message after the held ones" % k)
                except websockets.ConnectionClosed as e:
                    code = e.rcvd.code if getattr(e, "rcvd", None) else e.code
                    eq(code, 1001, "member %d's close code" % k)
            srv.proc.wait(tmo(10))
            check(time.monotonic() - t0 < window / 2, "the drain did not wait for the window")

        rctest.run(main(), 60)


TMP = rctest.scratch_dir("rc33-")
RELOADED = re.compile(r"SIGHUP: configuration .* reloaded")


def window_conf(delay):
    """The config file of the reload test: chat.lua with fanout_delay = delay."""
    return rctest.write_in(TMP, "window.conf.lua", "return { script = %r, fanout_delay = %s }\n"
                           % (CHAT, delay if isinstance(delay, (int, float)) else repr(delay)))


def sighup(srv, delay):
    """Rewrites the config file with fanout_delay = delay, sends SIGHUP and
    waits until main has published the new options (logged): the workers
    read the snapshot at their next fan-out."""
    before = sum(1 for l in srv.log() if RELOADED.search(l))
    window_conf(delay)
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + tmo(10)
    while sum(1 for l in srv.log() if RELOADED.search(l)) == before:
        check(time.monotonic() < deadline, "no reload logged after SIGHUP:\n" + srv.log_tail())
        time.sleep(0.02)
    ignored = [l for l in srv.log() if "config reload: " in l and "fanout_delay" in l]
    check(not ignored, "fanout_delay reported as restart-only: %r" % ignored[:1])


def flushes(port):
    return total(metrics(port), "roomcast_fanout_flushes_total")


async def burst(members, room, tag):
    """One broadcast seen by every member (it opens a window, when one is
    on), then HELD more sent at once; every member gets all, in order."""
    await members[0].send(json.dumps({"type": "broadcast", "room_id": room,
                                      "content": tag + "-0"}))
    for k, ws in enumerate(members):
        eq(await broadcasts(ws, 1, tmo(10)), [tag + "-0"], "member %d's first" % k)
    want = ["%s-%d" % (tag, n) for n in range(1, HELD + 1)]
    for c in want:
        await members[0].send(json.dumps({"type": "broadcast", "room_id": room, "content": c}))
    for k, ws in enumerate(members):
        eq(await broadcasts(ws, HELD, tmo(10)), want, "member %d's burst" % k)


def test_sighup_turns_the_window_on_and_off(_srv):
    """fanout_delay is reloadable: off (0) at the start, no window flush for
    bursts; 20 ms by SIGHUP, and the bursts' members are written at a
    window's end (fanout_flushes_total rises); a long window open when
    SIGHUP sets 0 still ends and delivers what it held, in order; then off
    again, no window flush at all."""
    with rctest.Server(("-c", window_conf(0), "--admin", "127.0.0.1:0")).start() as srv:
        port = admin_port(srv)
        room = "reload-%d-%d" % (os.getpid(), next(RUN))

        async def main():
            members = [await ws_join(srv, room, "h%d" % i) for i in range(MEMBERS)]
            f0 = flushes(port)
            for r in range(3):
                await burst(members, room, "off%d" % r)
            eq(flushes(port) - f0, 0, "window flushes with fanout_delay 0")

            sighup(srv, "20ms")
            f0 = flushes(port)
            for r in range(5):  # a stalled client can miss a 20 ms window; five can't all
                await burst(members, room, "on%d" % r)
                await asyncio.sleep(0.05)  # the last window's end
                if flushes(port) > f0:
                    break
            check(flushes(port) > f0, "no window flush in 5 bursts with fanout_delay 20ms")

            long = WINDOW
            sighup(srv, long)
            await asyncio.sleep(0.05)  # the 20 ms windows are over
            for ws in members:
                await ws.close()
            members, f0 = await open_window(srv, room + "-long", ["l%d" % i for i in range(MEMBERS)],
                                            long, lambda: flushes(port))
            t0 = time.monotonic()
            want = ["held%d" % n for n in range(1, HELD + 1)]
            for c in want:
                await members[0].send(json.dumps({"type": "broadcast", "room_id": room + "-long",
                                                  "content": c}))
            await asyncio.sleep(0.05)
            for k, ws in enumerate(members[1:], 1):
                eq(buffered(ws), 0, "member %d's messages before the window's end" % k)
            sighup(srv, 0)  # while they are held
            for k, ws in enumerate(members):
                eq(await broadcasts(ws, HELD, tmo(long + 10)), want, "member %d's held burst" % k)
            woken = flushes(port) - f0
            check(MEMBERS - 1 <= woken <= MEMBERS,
                  "the old window's end wrote %d members, want %d..%d (%.2fs)" %
                  (woken, MEMBERS - 1, MEMBERS, time.monotonic() - t0))

            f0 = flushes(port)
            for r in range(3):
                await burst(members, room + "-long", "off-again%d" % r)
            await asyncio.sleep(0.05)
            eq(flushes(port) - f0, 0, "window flushes after SIGHUP set 0 again")
            for ws in members:
                await ws.close()

        rctest.run(main(), 60)


def close_code(c, timeout):
    """Reads past the data a stalled raw member still had coming: the code
    of the close frame after it."""
    while True:
        ev = c.recv(timeout)
        if isinstance(ev, rctest.Frame) and ev.opcode == rctest.OP_CLOSE:
            p = ev.payload
            return int.from_bytes(p[:2], "big") if len(p) >= 2 else None


def test_slow_consumer_closed_under_window(_srv):
    """The close policy still applies to a member that does not read while
    the window holds its flushes: it is closed 1008, the others get all."""
    with rctest.Server(("-s", CHAT, "--fanout-delay", "0.05", "--slow-policy", "close",
                        "--sendq-limit", "256K", "--sendq-soft-limit", "256K",
                        "--sndbuf", "8K")).start() as srv:
        async def main():
            fast = await ws_join(srv, "slow", "fast")
            # a raw member that never reads, with a small receive buffer
            slow = srv.raw(rcvbuf=4096)
            slow.upgrade("/ws")
            slow.send_frame(rctest.OP_TEXT, json.dumps(
                {"type": "join", "room_id": "slow", "user_id": "slow"}).encode())
            slow.recv(timeout=tmo(5))  # joined
            big = "x" * 4000
            count = 300
            got = asyncio.create_task(broadcasts(fast, count, tmo(30)))
            for n in range(count):
                await fast.send(json.dumps({"type": "broadcast", "room_id": "slow",
                                            "content": "%d%s" % (n, big)}))
            msgs = await got
            eq([int(m[:-len(big)]) for m in msgs], list(range(count)), "the reader's messages")
            code = close_code(slow, tmo(10))
            slow.close()
            await fast.close()
            return code

        code = rctest.run(main(), 60)
        eq(code, 1008, "the slow member's close code")


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
