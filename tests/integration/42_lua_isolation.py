"""42_lua_isolation - a handler that throws or never ends hurts only its own
message: the client gets error handler_error, the server logs file:line, and
the connection, the worker and every other connection keep working. Endless
loops (plain, JIT-hot, pcall-guarded) are cut off by the instruction budget."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import Client, wait_log  # noqa: E402
from rctest import check, eq  # noqa: E402

SCRIPT = r'''
local rc = require("roomcast")
return {
    decode_json = false,
    on_message = function(conn, data)
        if data == "throw" then
            error("deliberate failure")
        elseif data == "spin" then
            while true do end
        elseif data == "hot" then
            local x = 0
            for i = 1, 1e13 do x = x + i end
        elseif data == "stubborn" then
            while true do pcall(function() while true do end end) end
        elseif data == "nilcall" then
            local t = nil
            return t.field
        end
        conn:send("echo:" .. data)
    end,
}
'''

PATH = rctest.write_in(rctest.scratch_dir("rc42_"), "isolate.lua", SCRIPT)

ARGS = ("-s", PATH, "--lua-budget", "2000000")


def test_throw_gives_handler_error(srv):
    a, b = Client(srv), Client(srv)
    a.send("throw")
    a.expect_error("handler_error")
    a.send("ok1")
    eq(a.raw(), b"echo:ok1", "same connection keeps working")
    b.send("ok2")
    eq(b.raw(), b"echo:ok2", "others keep working")
    wait_log(srv, "isolate.lua:7: deliberate failure")
    a.send("nilcall")
    a.expect_error("handler_error")
    wait_log(srv, "isolate.lua:17:")
    a.close()
    b.close()


def test_endless_loops_are_cut_off(srv):
    a, b = Client(srv), Client(srv)
    for what in ("spin", "hot", "stubborn"):
        t0 = time.monotonic()
        a.send(what)
        if what != "stubborn":
            a.expect_error("handler_error", timeout=10)
        b.send("ping-" + what)
        eq(b.raw(timeout=10), ("echo:ping-" + what).encode(), "other connection after " + what)
        a.send("after-" + what)
        m = a.raw(timeout=10)
        if what == "stubborn" and m.startswith(b"{"):
            m = a.raw(timeout=10)  # the handler_error reply may or may not make it
        eq(m, ("echo:after-" + what).encode(), "same connection after " + what)
        check(time.monotonic() - t0 < rctest.tmo(5), "%s took too long" % what)
    wait_log(srv, "instruction budget", count=3)
    a.close()
    b.close()


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
