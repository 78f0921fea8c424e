"""44_lua_routes_tick - the parts of the Lua layer that only a configured
server shows: a room-name pattern routed to its own script (config file
`routes`: game:* -> scripts/game.lua beside scripts/chat.lua), plugins listed
in the config file (not on the command line), and on_tick timers
(`tick_interval`)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import Client, SRC, uniq  # noqa: E402
from rctest import check, eq  # noqa: E402

TMP = rctest.scratch_dir("rc-routes-")


def write(name, text):
    return rctest.write_in(TMP, name, text)


ROUTES_CONF = write("routes.conf.lua", """
script = "%(src)s/scripts/chat.lua"
routes = { { pattern = "game:*", script = "%(src)s/scripts/game.lua" } }
plugins = { { name = "ratelimit", path = "%(src)s/plugins/ratelimit.lua",
              config = { rate = 1000, burst = 1000 } } }
""" % {"src": SRC})

TICK_LUA = write("tick.lua", """
local rc = require("roomcast")
local n = 0
return {
  on_connect = function(conn) conn:join("ticks") end,
  on_tick = function(now_ms)
    n = n + 1
    rc.room("ticks"):publish(rc.json.encode({type = "tick", n = n, now = now_ms,
                                                 worker = rc.worker_id()}))
  end,
}
""")
TICK_CONF = write("tick.conf.lua", 'tick_interval = "200ms"\n')


def until(c, type_, limit=10):
    """The next message of this type, skipping room traffic before it."""
    for _ in range(limit):
        m = c.recv()
        if m.get("type") == type_:
            return m
    raise rctest.Failure("no %s message within %d messages" % (type_, limit))


@rctest.server("-c", ROUTES_CONF, "--admin", "off")
def test_game_rooms_run_the_routed_script(srv):
    room = "game:" + uniq("g")
    a, b = Client(srv), Client(srv)
    a.join(room, "alice")
    b.join(room, "bob")
    # chat.lua still handles broadcast in a routed room
    a.send({"type": "broadcast", "room_id": room, "content": "gl hf"})
    eq(until(b, "broadcast")["content"], "gl hf", "chat in a game room")
    # game.lua's own messages exist only in game:* rooms
    a.send({"type": "ready", "room_id": room})
    eq(until(b, "player_ready")["player"], "alice", "ready event")
    b.send({"type": "ready", "room_id": room})
    start = until(a, "game_start")
    eq(sorted(start["players"]), ["alice", "bob"], "players in game_start")
    check("seq" in start, "room events are stamped with seq")
    # and not in other rooms: there `ready` is an unknown type for chat.lua
    lobby = uniq("lobby")
    a.join(lobby)
    a.send({"type": "ready", "room_id": lobby})
    err = until(a, "error")  # (after the room events still queued for a)
    eq(err["code"], "unknown_type", "`ready` outside game:* rooms")
    a.conn.close()
    b.conn.close()


@rctest.server("-s", TICK_LUA, "-c", TICK_CONF, "--admin", "off")
def test_on_tick_runs_on_the_configured_interval(srv):
    c = Client(srv)
    ticks = [json.loads(c.raw(timeout=3.0)) for _ in range(12)]
    check(all(t["type"] == "tick" for t in ticks), "tick messages: %r" % ticks)
    # Each worker has its own state and timer, and its clock is its loop's
    # time: compare ticks of one worker only (two workers' ticks may arrive
    # at the room a millisecond out of clock order).
    by_worker = {}
    for t in ticks:
        by_worker.setdefault(t["worker"], []).append(t)
    for w, ts in by_worker.items():
        ns = [t["n"] for t in ts]
        eq(ns, list(range(ns[0], ns[0] + len(ns))), "worker %d counts its ticks" % w)
        gaps = [b["now"] - a["now"] for a, b in zip(ts, ts[1:])]
        check(all(g >= 0 for g in gaps), "worker %d's clock moves forward: %r" % (w, gaps))
        if len(ts) > 2:  # libev catches a late timer up, so judge the mean gap
            mean = (ts[-1]["now"] - ts[0]["now"]) / (len(ts) - 1)
            check(mean >= 150, "worker %d ticks every 200ms: %r" % (w, gaps))
    c.conn.close()


if __name__ == "__main__":
    rctest.main(globals(), default_args=("--echo", "--admin", "off"))
