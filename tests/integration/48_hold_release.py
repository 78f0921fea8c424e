"""48_hold_release - a held join (conn:join(name, {hold = true})) that its
handler never releases is ended by the core when that handler ends (lua/API.md
"Held joins"), counted in roomcast_recover_holds_ended_total and logged:

- the handler returns without conn:release, having sent the member nothing
  since the join: the core releases after 0, so the member gets what was held
  (in order) and every later broadcast, nothing missing, nothing twice;
- the handler raises after the held join (at once, or after a wait): the
  same, and the client gets the chain's handler_error answer after the held
  frames;
- the handler refuses through the chain (false, code, text): the same, then
  the error answer;
- the handler sent part of an answer (a `joined`) and returns: the core
  cannot join that to the live stream without a gap or a duplicate, so it
  closes the connection 1011 "held join not released";
- a SIGHUP reload while the handler waits: it finishes in its old state and
  its hold ends the same way;
- a connection that closes while held, or a handler that leaves the room,
  ends nothing (no count), and the room forgets the member;
- a handler that releases is never counted;
- recover_hold_timeout: a handler that keeps waiting with the member held
  has its hold ended and the connection closed 1011 after the timeout.

A small script of its own (in the test's scratch dir), python3-websockets
clients; RC_WORKERS=1 and 3 (the publisher and the member are often on
different workers, the room's owner on a third)."""

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import uniq, wait_log  # noqa: E402
from rctest import check, eq, tmo  # noqa: E402
from rcadmin import admin_port, metrics, total  # noqa: E402

websockets = rctest.need_websockets()

TMP = rctest.scratch_dir("rc48-")
SCRIPT = rctest.write_in(TMP, "hold.lua", """
local rc = require("roomcast")
local HOLD = { hold = true }
return {
  on_message = function(conn, msg)
    local cmd, room, arg = msg:match("^(%w+) ([%w_]+) ?(.*)$")
    if cmd == "forget" then          -- joins held, returns without release
      conn:join(room, HOLD)
    elseif cmd == "sleepforget" then -- the same after a wait
      conn:join(room, HOLD)
      rc.sleep(tonumber(arg))
    elseif cmd == "raise" then
      conn:join(room, HOLD)
      error("boom after the held join")
    elseif cmd == "sleepraise" then
      conn:join(room, HOLD)
      rc.sleep(tonumber(arg))
      error("boom after the wait")
    elseif cmd == "refuse" then
      conn:join(room, HOLD)
      return false, "unavailable", "no history now"
    elseif cmd == "half" then        -- a partial answer, then returns
      conn:join(room, HOLD)
      conn:send("joined " .. room)
    elseif cmd == "sleepleave" then
      conn:join(room, HOLD)
      rc.sleep(tonumber(arg))
      conn:leave(room)
    elseif cmd == "good" then        -- the rule: always release
      conn:join(room, HOLD)
      conn:send("joined " .. room)
      conn:release(room, 0)
    elseif cmd == "pub" then
      rc.room(room):publish(arg)
    elseif cmd == "count" then
      conn:send("count " .. tostring(rc.room(room):count()))
    elseif cmd == "state" then
      local ok, err = conn:hold_intact(room)
      conn:send("state " .. tostring(ok) .. " " .. tostring(err))
    end
  end,
}
""")

ARGS = ("-s", SCRIPT, "--admin", "127.0.0.1:0")
METRIC = "roomcast_recover_holds_ended_total"


def ended(srv):
    return total(metrics(admin_port(srv)), METRIC)


async def client(srv):
    return await websockets.connect(rctest.ws_url(srv), max_size=None, compression=None,
                                    ping_interval=None)


async def text(ws, timeout=5.0):
    m = await asyncio.wait_for(ws.recv(), tmo(timeout))
    return m.decode() if isinstance(m, bytes) else m


async def nothing(ws, seconds=0.3):
    try:
        m = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise rctest.Failure("expected nothing, got %r" % m)


async def wait_count(p, room, want):
    """Asks (as p) until the room counts `want` members: the member's join
    ran (a held member is counted), without a word to the member."""
    for _ in range(250):
        await p.send("count %s" % room)
        got = await text(p)
        if got == "count %d" % want:
            return
        await asyncio.sleep(0.02)
    raise rctest.Failure("room %s: %s, want %d members" % (room, got, want))


async def pub(p, room, *payloads):
    for x in payloads:
        await p.send("pub %s %s" % (room, x))


async def expect_seq(m, payloads, what):
    got = [await text(m) for _ in payloads]
    eq(got, list(payloads), what)


async def expect_close(ws, code, reason, timeout):
    """ws is closed by the server with (code, reason) before timeout."""
    try:
        x = await asyncio.wait_for(ws.recv(), tmo(timeout))
        raise rctest.Failure("expected a close, got %r" % x)
    except websockets.ConnectionClosed as e:
        eq((e.rcvd.code, e.rcvd.reason), (code, reason), "close")


def member_and_publisher(srv, body, want_ended, what):
    """Runs body(m, p) with two new clients, the member m and the publisher
    p (closed after it); then the core must have ended want_ended holds
    meanwhile (roomcast_recover_holds_ended_total)."""
    n0 = ended(srv)

    async def go():
        m, p = await client(srv), await client(srv)
        await body(m, p)
        await m.close()
        await p.close()
    rctest.run(go())
    eq(ended(srv) - n0, want_ended, what)


@rctest.server(*ARGS)
def test_return_without_release_releases_after_0(srv):
    room = uniq("f")

    async def go(m, p):
        await m.send("forget %s" % room)
        await wait_count(p, room, 1)
        await pub(p, room, "a1", "a2", "a3")
        await expect_seq(m, ["a1", "a2", "a3"], "the member hears the room, in order")
        await m.send("state %s" % room)
        eq(await text(m), "state nil not_member", "it waits no more")
        await nothing(m)
    member_and_publisher(srv, go, 1, "one hold ended by the core")
    wait_log(srv, "without conn:release: released after 0")


@rctest.server(*ARGS)
def test_return_after_a_wait_gives_the_held_frames_in_order(srv):
    room = uniq("w")

    async def go(m, p):
        await m.send("sleepforget %s 400" % room)
        await wait_count(p, room, 1)
        await pub(p, room, "b1", "b2", "b3")  # held while the handler sleeps
        await nothing(m, 0.1)
        await expect_seq(m, ["b1", "b2", "b3"], "the held frames after the handler ended")
        await pub(p, room, "b4", "b5")
        await expect_seq(m, ["b4", "b5"], "then the live ones")
        await nothing(m)
    member_and_publisher(srv, go, 1, "one hold ended by the core")


@rctest.server(*ARGS)
def test_raise_after_the_held_join(srv):
    room, room2 = uniq("r"), uniq("rw")

    async def go(m, p):
        await m.send("raise %s" % room)
        check('"handler_error"' in await text(m), "the chain answers handler_error")
        await pub(p, room, "c1", "c2")
        await expect_seq(m, ["c1", "c2"], "the member hears the room")
        # raising after a wait: the held frames, then the chain's answer
        await m.send("sleepraise %s 400" % room2)
        await wait_count(p, room2, 1)
        await pub(p, room2, "d1", "d2")
        await expect_seq(m, ["d1", "d2"], "the held frames first")
        check('"handler_error"' in await text(m), "then the chain's answer")
        await pub(p, room2, "d3")
        await expect_seq(m, ["d3"], "then live")
        await nothing(m)
    member_and_publisher(srv, go, 2, "two holds ended by the core")
    wait_log(srv, "raised without conn:release")


@rctest.server(*ARGS)
def test_refusal_through_the_chain(srv):
    room = uniq("n")

    async def go(m, p):
        await m.send("refuse %s" % room)
        check('"unavailable"' in await text(m), "the script's refusal reaches the client")
        await pub(p, room, "e1")
        await expect_seq(m, ["e1"], "and the member hears the room")
    member_and_publisher(srv, go, 1, "one hold ended by the core")


@rctest.server(*ARGS)
def test_partial_answer_closes_1011(srv):
    room = uniq("h")

    async def go(m, p):
        await m.send("half %s" % room)
        eq(await text(m), "joined %s" % room, "the partial answer")
        await expect_close(m, 1011, "held join not released", 5)
        await wait_count(p, room, 0)
    member_and_publisher(srv, go, 1, "one hold ended by the core")
    wait_log(srv, "closing it 1011")


@rctest.server(*ARGS)
def test_reload_while_the_handler_waits(srv):
    room = uniq("g")
    nworkers = int(os.environ.get("RC_WORKERS") or "1")
    before = len([ln for ln in srv.log() if "reload: generation" in ln])

    async def go(m, p):
        await m.send("sleepforget %s 700" % room)
        await wait_count(p, room, 1)
        srv.proc.send_signal(signal.SIGHUP)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_log(srv, "reload: generation", count=before + nworkers))
        await pub(p, room, "g1", "g2")
        await expect_seq(m, ["g1", "g2"], "held across the reload, released at the end")
        await pub(p, room, "g3")
        await expect_seq(m, ["g3"], "then live")
    member_and_publisher(srv, go, 1, "one hold ended by the core")


@rctest.server(*ARGS)
def test_close_or_leave_while_held_ends_nothing(srv):
    room, room2 = uniq("c"), uniq("l")

    async def go(m, p):
        await m.send("sleepforget %s 300" % room)
        await wait_count(p, room, 1)
        await pub(p, room, "x1", "x2")
        await m.close()  # while held: the release hook frees what was held
        await wait_count(p, room, 0)
        await asyncio.sleep(0.4)  # the handler resumes and finds it gone
        m2 = await client(srv)
        await m2.send("sleepleave %s 300" % room2)
        await wait_count(p, room2, 1)
        await pub(p, room2, "y1")
        await wait_count(p, room2, 0)
        await nothing(m2)
        await m2.send("good %s" % room2)
        eq(await text(m2), "joined %s" % room2, "a handler that releases")
        await pub(p, room2, "y2")
        await expect_seq(m2, ["y2"], "hears the room")
        await m2.close()
    member_and_publisher(srv, go, 0, "nothing ended by the core")


@rctest.server(*ARGS, "--recover-hold-timeout", "300ms")
def test_recover_hold_timeout_closes_a_wait_that_goes_on(srv):
    """A handler that keeps waiting with the member held: after
    recover_hold_timeout the core ends the hold and closes the connection
    1011 (the handler may still send, so no release); the handler's own
    end later counts nothing more. Others in the room are not touched."""
    n0 = ended(srv)
    room = uniq("t")

    async def go(m, p):
        o = await client(srv)
        await o.send("good %s" % room)
        eq(await text(o), "joined %s" % room, "an ordinary member")
        await m.send("sleepforget %s 1200" % room)
        await wait_count(p, room, 2)
        await pub(p, room, "t1")
        await expect_close(m, 1011, "held join not released in time", 3)
        eq(ended(srv) - n0, 1, "one hold ended by the timeout")
        await wait_count(p, room, 1)
        await expect_seq(o, ["t1"], "the other member heard the room")
        await asyncio.sleep(1.0)  # the handler's end: its hold is gone already
        await pub(p, room, "t2")
        await expect_seq(o, ["t2"], "and still does")
        await o.close()
    member_and_publisher(srv, go, 1, "counted once")
    wait_log(srv, "recover_hold_timeout")


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
