"""40_lua_chat - scripts/chat.lua through the real server and Lua bridge:
the seed protocol verbatim between two clients, broadcast fan-out with
sender/seq/ts, every error path with its stable code, direct messages,
presence, history, leave, and cleanup on disconnect. Run with RC_WORKERS=1
and 3 (clients land on different workers)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import Client, script, uniq  # noqa: E402
from rctest import check, eq  # noqa: E402

ARGS = ("-s", script("chat.lua"))


def test_seed_protocol_verbatim(srv):
    alice, bob = Client(srv), Client(srv)
    alice.send('{"type":"join","room_id":"game_lobby","user_id":"alice123"}')
    # The seed's reply, then (issue 10) the room's last seq and its epoch.
    joined = re.compile(rb'^\{"type":"joined","room_id":"game_lobby","seq":\d+,"epoch":"[0-9a-z]+"\}$')
    got = alice.raw()
    check(joined.match(got), "joined reply: %r" % got)
    bob.send('{"type":"join","room_id":"game_lobby","user_id":"bob456"}')
    got = bob.raw()
    check(joined.match(got), "joined reply: %r" % got)
    alice.send('{"type":"broadcast","room_id":"game_lobby","user_id":"alice123",'
               '"content":"Hello everyone!"}')
    got = [alice.recv(), bob.recv()]
    for m in got:
        eq(m["type"], "broadcast", "type")
        eq(m["room_id"], "game_lobby", "room_id")
        eq(m["content"], "Hello everyone!", "content")
        eq(m["sender"], "alice123", "sender")
        check(isinstance(m["seq"], int) and m["seq"] >= 1, "seq %r" % m.get("seq"))
        check(isinstance(m["ts"], int) and m["ts"] > 1.6e12, "ts %r" % m.get("ts"))
    eq(got[0]["seq"], got[1]["seq"], "both members see the same seq")
    bob.send({"type": "broadcast", "room_id": "game_lobby", "content": "hi alice"})
    a2, b2 = alice.recv(), bob.recv()
    eq(a2["seq"], got[0]["seq"] + 1, "next seq")
    eq(b2["seq"], a2["seq"], "same seq")
    eq(a2["sender"], "bob456", "sender")
    alice.close()
    bob.close()


def test_broadcast_order_and_fanout(srv):
    room = uniq("room")
    clients = [Client(srv) for _ in range(6)]
    for i, c in enumerate(clients):
        c.join(room, uniq("u"))
    n = 20
    for k in range(n):
        clients[k % 6].send({"type": "broadcast", "room_id": room, "content": "m%d" % k})
    seen = None
    for c in clients:
        msgs = [c.recv() for _ in range(n)]
        seqs = [m["seq"] for m in msgs]
        eq(seqs, list(range(seqs[0], seqs[0] + n)), "contiguous seqs")
        order = [m["content"] for m in msgs]
        if seen is None:
            seen = order
        eq(order, seen, "every member sees the same order")
        # one sender's messages stay in its sending order
        for s in range(6):
            mine = [int(x[1:]) for x in order if int(x[1:]) % 6 == s]
            eq(mine, sorted(mine), "sender %d order" % s)
    for c in clients:
        c.close()


def test_ack_with_id(srv):
    room = uniq("room")
    c = Client(srv)
    c.send({"type": "join", "room_id": room, "user_id": uniq("u"), "id": "j1"})
    c.expect(type="joined", room_id=room, id="j1")
    c.send({"type": "broadcast", "room_id": room, "content": "x", "id": 7})
    # the ack and the room's fan-out take different paths: either order
    got = {m["type"]: m for m in (c.recv(), c.recv())}
    check(set(got) == {"broadcast", "ack"}, "broadcast and ack: %r" % got)
    eq(got["ack"].get("id"), 7, "ack id")
    check("seq" in got["broadcast"], "the broadcast carries the seq")
    c.close()


def test_error_paths(srv):
    room = uniq("room")
    c = Client(srv)
    c.send("nonsense")
    c.expect_error("bad_json")
    c.send("[1,2]")
    c.expect_error("bad_request")
    c.send("{}")
    c.expect_error("bad_request")
    c.send({"type": 5})
    c.expect_error("bad_request")
    c.send({"type": "dance", "id": "q"})
    c.expect_error("unknown_type", id="q")
    c.send({"type": "join"})
    c.expect_error("missing_field")
    c.send({"type": "join", "room_id": 5})
    c.expect_error("invalid_field")
    c.send({"type": "join", "room_id": ""})
    c.expect_error("invalid_field")
    c.send({"type": "join", "room_id": "x" * 200})
    c.expect_error("invalid_field")
    c.send({"type": "broadcast", "room_id": room, "content": "hi", "id": 3})
    c.expect_error("not_member", id=3)
    c.send({"type": "history", "room_id": room})
    c.expect_error("not_member")
    c.send({"type": "presence", "room_id": room})
    c.expect_error("not_member")
    c.send({"type": "leave", "room_id": room})
    c.expect_error("not_member")
    c.join(room, uniq("u"))
    c.send({"type": "join", "room_id": room})
    c.expect_error("already_member")
    c.send({"type": "broadcast", "room_id": room})
    c.expect_error("missing_field")
    c.send({"type": "broadcast", "room_id": room, "content": 5})
    c.expect_error("invalid_field")
    c.send({"type": "broadcast", "room_id": room, "content": "x" * 20000})
    c.expect_error("too_big")
    c.send({"type": "direct", "to": uniq("nobody"), "content": "x"})
    c.expect_error("not_found")
    c.send({"type": "history", "room_id": room, "limit": -1})
    c.expect_error("invalid_field")
    c.send({"type": "join", "room_id": uniq("r"), "user_id": "someone_else"})
    c.expect_error("invalid_field")
    c.send({"type": "auth", "token": "x"})
    c.expect_error("not_authorized")
    c.send({"type": "dance", "id": {"no": "objects"}})
    c.expect_error("invalid_field")
    c.send_binary(b"\x00\x01")
    c.expect_error("bad_request")
    # after all that the connection still works
    c.send({"type": "broadcast", "room_id": room, "content": "still here"})
    c.expect(type="broadcast", content="still here")
    c.close()


def test_direct_messages(srv):
    ua, ub = uniq("alice"), uniq("bob")
    a, b = Client(srv), Client(srv)
    b2 = Client(srv)  # bob's second connection
    a.join(uniq("r"), ua)
    b.join(uniq("r"), ub)
    b2.join(uniq("r"), ub)
    a.send({"type": "direct", "to": ub, "content": "psst", "id": "d1"})
    for c in (b, b2):
        m = c.expect(type="direct", content="psst")
        eq(m["from"], ua, "from")
    ack = a.expect(type="ack", id="d1")
    eq(ack["delivered"], 2, "delivered")
    a.nothing()
    for c in (a, b, b2):
        c.close()


def test_presence(srv):
    room = uniq("room")
    ua, ub = uniq("alice"), uniq("bob")
    a, b = Client(srv), Client(srv)
    a.join(room, ua)
    b.join(room, ub)
    a.send({"type": "presence", "room_id": room, "id": 1})
    p = a.expect(type="presence", room_id=room, id=1)
    eq(p["count"], 2, "count")
    eq(sorted(p["users"]), sorted([ua, ub]), "users")
    b.close()
    a.send({"type": "presence", "room_id": room})
    p = a.expect(type="presence")
    eq(p["count"], 1, "count after bob left")
    eq(p["users"], [ua], "users after bob left")
    a.close()


def test_history(srv):
    room = uniq("room")
    a = Client(srv)
    a.join(room, uniq("u"))
    seqs = []
    for i in range(5):
        a.send({"type": "broadcast", "room_id": room, "content": "h%d" % i})
        seqs.append(a.expect(type="broadcast")["seq"])
    a.send({"type": "history", "room_id": room})
    h = a.expect(type="history", room_id=room)
    eq([m["content"] for m in h["messages"]], ["h%d" % i for i in range(5)], "all, oldest first")
    eq([m["seq"] for m in h["messages"]], seqs, "seqs")
    a.send({"type": "history", "room_id": room, "since": seqs[2]})
    h = a.expect(type="history")
    eq([m["content"] for m in h["messages"]], ["h3", "h4"], "since")
    a.send({"type": "history", "room_id": room, "limit": 2})
    h = a.expect(type="history")
    eq([m["content"] for m in h["messages"]], ["h3", "h4"], "limit: the newest")
    # a late joiner resumes from a seq
    b = Client(srv)
    b.join(room, uniq("u"), since=seqs[1])
    got = [b.recv()["content"] for _ in range(3)]
    eq(got, ["h2", "h3", "h4"], "replay after since")
    a.close()
    b.close()


def test_leave(srv):
    room = uniq("room")
    a, b = Client(srv), Client(srv)
    a.join(room, uniq("u"))
    b.join(room, uniq("u"))
    b.send({"type": "leave", "room_id": room, "id": "l"})
    b.expect(type="left", room_id=room, id="l")
    a.send({"type": "broadcast", "room_id": room, "content": "after leave"})
    a.expect(type="broadcast", content="after leave")
    b.nothing(0.3)
    b.send({"type": "broadcast", "room_id": room, "content": "x"})
    b.expect_error("not_member")
    a.close()
    b.close()


def test_disconnect_leaves_rooms(srv):
    room = uniq("room")
    a, b = Client(srv), Client(srv)
    a.join(room, uniq("u"))
    b.join(room, uniq("u"))
    b.conn.close()  # TCP gone without a close frame
    for _ in range(50):
        a.send({"type": "presence", "room_id": room})
        if a.expect(type="presence")["count"] == 1:
            break
        rctest.time.sleep(0.02)
    else:
        raise rctest.Failure("the dropped connection stayed in the room")
    a.close()


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
