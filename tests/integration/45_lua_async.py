"""45_lua_async - handlers that wait (rc.sleep, the generic asynchronous call
of core/lua/lcall.h): the worker serves others while one waits; one
connection's messages still run in order behind a waiting handler (a
bounded queue: reads are held, then resumed, nothing lost); a reload lets a
waiting handler finish in its old generation while later messages run in
the new one; a close of the connection drops what queued behind the wait,
runs on_disconnect (which may wait too), and the resumed handler finds its
connection closed; on_connect cannot wait (cannot_wait)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import Client, wait_log  # noqa: E402
from rctest import check, eq  # noqa: E402
from rcadmin import admin_port, metrics, total, wait_metric  # noqa: E402

TMP = rctest.scratch_dir("rc-async-")
SCRIPT = rctest.write_in(TMP, "async.lua", """
local rc = require("roomcast")
local at_connect, tags = {}, {}
local function note(s) rc.room("watch"):publish(s) end
return {
  on_connect = function(conn)
    local ok, err = rc.sleep(1)
    at_connect[conn.id] = tostring(ok) .. " " .. tostring(err)
  end,
  on_message = function(conn, msg)
    local cmd, arg = msg:match("^(%w+):?(.*)$")
    if cmd == "sleep" then
      local ok, err = rc.sleep(tonumber(arg))
      local sent, serr = conn:send("woke " .. arg .. " " .. tostring(ok) .. " g" .. rc.generation())
      if not sent then note("resumed " .. (tags[conn.id] or "?") .. " " .. tostring(serr)) end
    elseif cmd == "gen" then
      conn:send("gen g" .. rc.generation())
    elseif cmd == "watch" then
      conn:join("watch")
      conn:send("watching")
    elseif cmd == "tag" then
      tags[conn.id] = arg
    elseif cmd == "note" then
      note("note " .. arg)
    elseif cmd == "cw" then
      conn:send("cw " .. at_connect[conn.id])
    else
      conn:send("echo " .. msg)
    end
  end,
  on_disconnect = function(conn)
    at_connect[conn.id] = nil
    local tag = tags[conn.id]
    local ok = rc.sleep(20)
    if tag then note("gone " .. tag .. " " .. tostring(ok)) end
  end,
}
""")


def s(c, timeout=5.0):
    p = c.raw(timeout)
    return p.decode() if isinstance(p, bytes) else p


@rctest.server("-s", SCRIPT, "--admin", "off")
def test_others_run_while_one_waits_and_order_is_kept(srv):
    a, b = Client(srv), Client(srv)
    a.send("sleep:400")
    a.send("one")
    a.send("two")
    t0 = time.monotonic()
    b.send("hello")
    eq(s(b), "echo hello", "b's answer")
    check(time.monotonic() - t0 < 0.3, "b answered while a waits")
    check(s(a).startswith("woke 400 true g"), "a's wait ends first")
    eq(s(a), "echo one", "then what queued behind it, in order")
    eq(s(a), "echo two", "in order")
    check(time.monotonic() - t0 >= 0.35, "a waited")
    a.close()
    b.close()


@rctest.server("-s", SCRIPT, "--admin", "off")
def test_queue_behind_a_wait_is_bounded_and_loses_nothing(srv):
    a = Client(srv)
    a.send("sleep:300")
    n = 400  # well over the hold mark (32): reads are held, then resumed
    for i in range(n):
        a.send("m%d" % i)
    check(s(a).startswith("woke 300 true g"), "the wait ends")
    for i in range(n):
        eq(s(a), "echo m%d" % i, "message %d in order" % i)
    a.send("sleep:0")
    check(s(a).startswith("woke 0 true g"), "a zero wait")
    a.close()


@rctest.server("-s", SCRIPT, "--admin", "off")
def test_reload_lets_a_waiting_handler_finish_in_its_generation(srv):
    a = Client(srv)
    a.send("gen")
    g = int(s(a).split("g")[-1])
    a.send("sleep:600")
    time.sleep(0.1)
    srv.proc.send_signal(signal.SIGHUP)
    nworkers = int(os.environ.get("RC_WORKERS") or "1")
    wait_log(srv, "reload: generation %d" % (g + 1), count=nworkers)
    a.send("gen")  # queued behind the wait
    eq(s(a), "woke 600 true g%d" % g, "the waiting handler finishes in its generation")
    eq(s(a), "gen g%d" % (g + 1), "the next message runs in the new generation")
    a.send("sleep:10")
    eq(s(a), "woke 10 true g%d" % (g + 1), "new waits run in the new generation")
    a.close()


@rctest.server("-s", SCRIPT, "--admin", "127.0.0.1:0")
def test_waiting_handlers_are_counted(srv):
    """/metrics: roomcast_lua_waiting counts the handlers waiting now (per
    worker), back to 0 once they resumed; no wait here ran into
    lua_wait_timeout, so roomcast_lua_wait_timeouts_total stays 0."""
    port = admin_port(srv)
    # a run before this one may leave on_disconnect's 20 ms waits behind
    wait_metric(port, "roomcast_lua_waiting", 0)
    m = metrics(port)
    check("roomcast_lua_wait_timeouts_total" in m, "the timeout counter is exported")
    a, b = Client(srv), Client(srv)
    a.send("sleep:800")
    b.send("sleep:800")
    wait_metric(port, "roomcast_lua_waiting", 2)
    check(s(a).startswith("woke 800 true g"), "a woke")
    check(s(b).startswith("woke 800 true g"), "b woke")
    wait_metric(port, "roomcast_lua_waiting", 0)
    eq(total(metrics(port), "roomcast_lua_wait_timeouts_total"), 0, "no wait timed out")
    a.close()
    b.close()


@rctest.server("-s", SCRIPT, "--admin", "off")
def test_close_while_waiting(srv):
    w = Client(srv)
    w.send("watch")
    eq(s(w), "watching", "watcher joined")
    a = Client(srv)
    tag = "t%d" % int(time.monotonic() * 1000)
    a.send("tag:" + tag)
    a.send("sleep:300")
    a.send("note:queued-behind")  # dropped with the close
    time.sleep(0.05)
    a.conn.close()  # abrupt: no close frame
    got = [s(w) for _ in range(2)]
    eq(sorted(got), ["gone %s true" % tag, "resumed %s closed" % tag],
       "on_disconnect waited and ran; the resumed handler saw its connection closed")
    w.nothing(0.3)  # the queued message never ran
    b = Client(srv)
    b.send("ping")
    eq(s(b), "echo ping", "the worker is fine")
    b.close()
    w.close()


@rctest.server("-s", SCRIPT, "--admin", "off")
def test_connect_cannot_wait(srv):
    a = Client(srv)
    a.send("cw")
    eq(s(a), "cw nil cannot_wait", "rc.sleep in on_connect")
    a.close()


if __name__ == "__main__":
    rctest.main(globals(), default_args=("--echo", "--admin", "off"))
