#!/usr/bin/python3
"""81_http_api - the HTTP API for backends under /api/ on the admin listener
(core/app/api.c), driven by urllib: every endpoint, every error status, the
bearer token, oversize bodies, and 200 slow clients holding the admin port
while /health still answers; /health's active_connections and the
dashboard page."""
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, server  # noqa: E402
from rcadmin import admin_port  # noqa: E402
from rclua import Client, script, uniq  # noqa: E402

TOKEN = "api-test-token"
ARGS = ("-s", script("chat.lua"), "--admin", "127.0.0.1:0", "--api-token", TOKEN)
AUTH = {"Authorization": "Bearer " + TOKEN}


def call(port, method, path, body=None, headers=None, raw=None):
    """-> (status, parsed JSON or text, headers)"""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = dict(AUTH if headers is None else headers)
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, headers=h,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=rctest.tmo(5)) as r:
            status, text, hdrs = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        status, text, hdrs = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def expect_error(got, status, code):
    eq(got[0], status, "status (body %r)" % (got[1],))
    check(isinstance(got[1], dict) and got[1].get("code") == code,
          "error code %r, want %r" % (got[1], code))
    check(got[1].get("message"), "an error message")


def test_publish_reaches_members(srv):
    port = admin_port(srv)
    room = uniq("api")
    a = Client(srv)
    a.join(room, user=uniq("alice"), since=0)
    st, body, hdrs = call(port, "POST", "/api/publish", {"room_id": room, "content": "hello"})
    eq(st, 200, "publish status %r" % body)
    check(hdrs["Content-Type"].startswith("application/json"), "JSON answer")
    seq = body["seq"]
    m = a.expect(type="broadcast", room_id=room, content="hello", sender="server")
    eq(m["seq"], seq, "the member's seq is the one the API answered")
    check(isinstance(m["ts"], int) and m["ts"] > 1.5e12, "ts in ms")
    # data: raw JSON, and the next seq
    st, body, _ = call(port, "POST", "/api/publish",
                       {"room_id": room, "data": {"n": [1, 2], "s": "x\u00e9"}})
    eq(st, 200, "publish data")
    eq(body["seq"], seq + 1, "sequenced after the first")
    m = a.expect(type="broadcast", room_id=room)
    eq(m["data"], {"n": [1, 2], "s": "x\u00e9"}, "data arrives as JSON")
    # interleaved with a member's publish: one order for everyone
    a.send({"type": "broadcast", "room_id": room, "content": "member"})
    st, body, _ = call(port, "POST", "/api/publish", {"room_id": room, "content": "api"})
    got = [a.expect(type="broadcast"), a.expect(type="broadcast")]
    eq(sorted(x["seq"] for x in got), [seq + 2, seq + 3], "seqs")
    check(body["seq"] in (seq + 2, seq + 3), "api seq")
    # history holds API publishes like any other
    st, h, _ = call(port, "GET", "/api/rooms/%s/history?since=%d" % (room, seq - 1))
    eq(st, 200, "history")
    eq([x["seq"] for x in h["messages"]], [seq, seq + 1, seq + 2, seq + 3], "history seqs")
    eq(h["messages"][0]["content"], "hello", "history content")
    a.close()


def test_publish_script_refusal(srv):
    port = admin_port(srv)
    room = uniq("api")
    big = "x" * 20000  # over chat.lua's max_content_bytes (16384)
    expect_error(call(port, "POST", "/api/publish", {"room_id": room, "content": big}), 400,
                 "too_big")


def test_send_and_disconnect(srv):
    port = admin_port(srv)
    user = uniq("bob")
    b1, b2 = Client(srv), Client(srv)
    b1.join(uniq("r"), user=user)
    b2.join(uniq("r"), user=user)
    st, body, _ = call(port, "POST", "/api/send", {"user_id": user, "content": "psst"})
    eq((st, body), (200, {"delivered": 2}), "send")
    for b in (b1, b2):
        b.expect(type="direct", content="psst", **{"from": "server"})
    eq(call(port, "POST", "/api/send", {"user_id": uniq("nobody"), "content": "x"})[1],
       {"delivered": 0}, "send to nobody")
    st, body, _ = call(port, "POST", "/api/disconnect",
                       {"user_id": user, "code": 4001, "reason": "kicked"})
    eq((st, body), (200, {"closed": 2}), "disconnect")
    for b in (b1, b2):
        code, reason = b.conn.expect_close(4001)
        eq(reason, b"kicked", "close reason")
        b.conn.close()
    # The server forgets the user when it releases the connections, which
    # happens after our close reaches it: wait for that, within a bound.
    deadline = time.monotonic() + rctest.tmo(3)
    while True:
        got = call(port, "POST", "/api/disconnect", {"user_id": user})[1]
        if got == {"closed": 0} or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    eq(got, {"closed": 0}, "nobody left to close")


def test_rooms_and_presence(srv):
    port = admin_port(srv)
    room = uniq("pres")
    users = [uniq("u"), uniq("u")]
    cs = []
    for u in users:
        c = Client(srv)
        c.join(room, user=u)
        cs.append(c)
    st, body, _ = call(port, "GET", "/api/rooms")
    eq(st, 200, "rooms")
    mine = [r for r in body["rooms"] if r["room_id"] == room]
    eq(len(mine), 1, "the room is listed")
    eq(mine[0]["members"], 2, "member count")
    st, body, _ = call(port, "GET", "/api/rooms/%s/presence" % room)
    eq(st, 200, "presence")
    eq(sorted(body["users"]), sorted(users), "users")
    eq(body["count"], 2, "count")
    # the count alone, a connection without a user id included
    anon = Client(srv)
    anon.join(room)
    st, body, _ = call(port, "GET", "/api/rooms/%s/count" % room)
    eq((st, body), (200, {"room_id": room, "count": 3}), "count alone")
    anon.close()
    # a room name with characters that need encoding in a path
    odd = uniq("a b/c")
    c = Client(srv)
    c.join(odd, user=uniq("u"))
    st, body, _ = call(port, "GET", "/api/rooms/%s/presence" %
                       urllib.request.quote(odd, safe=""))
    eq((st, body["room_id"], body["count"]), (200, odd, 1), "encoded room id")
    for x in cs + [c]:
        x.close()


def test_history_window(srv):
    port = admin_port(srv)
    room = uniq("hist")
    seqs = []
    for i in range(10):
        st, body, _ = call(port, "POST", "/api/publish", {"room_id": room, "content": str(i)})
        seqs.append(body["seq"])
    q = "/api/rooms/%s/history" % room
    eq([m["content"] for m in call(port, "GET", q + "?limit=3")[1]["messages"]],
       ["7", "8", "9"], "the latest 3")
    eq([m["seq"] for m in call(port, "GET", q + "?before=%d&limit=2" % seqs[5])[1]["messages"]],
       [seqs[3], seqs[4]], "before")
    eq([m["seq"] for m in call(port, "GET", q + "?since=%d&limit=2" % seqs[7])[1]["messages"]],
       [seqs[8], seqs[9]], "since")
    eq([m["seq"] for m in call(port, "GET", q + "?since=%d&before=%d" %
                                (seqs[1], seqs[4]))[1]["messages"]],
       [seqs[2], seqs[3]], "since and before")
    expect_error(call(port, "GET", q + "?limit=-1"), 400, "invalid_field")
    expect_error(call(port, "GET", q + "?since=abc"), 400, "invalid_field")


def test_errors(srv):
    port = admin_port(srv)
    # token
    expect_error(call(port, "GET", "/api/rooms", headers={}), 401, "unauthorized")
    st, _, hdrs = call(port, "GET", "/api/rooms", headers={"Authorization": "Bearer wrong"})
    eq(st, 401, "wrong token")
    check("Bearer" in (hdrs.get("WWW-Authenticate") or ""), "WWW-Authenticate")
    eq(call(port, "GET", "/api/rooms",
            headers={"Authorization": "Bearer " + TOKEN[:-1]})[0], 401, "a prefix of the token")
    eq(call(port, "GET", "/api/rooms",
            headers={"Authorization": "Bearer " + TOKEN + "x"})[0], 401, "token plus a byte")
    eq(call(port, "GET", "/api/rooms", headers={"Authorization": "Basic " + TOKEN})[0], 401,
       "not a bearer token")
    # paths and methods
    expect_error(call(port, "GET", "/api/nope"), 404, "not_found")
    expect_error(call(port, "GET", "/api/rooms/%s/presence" % uniq("none")), 404,
                 "room_not_found")
    expect_error(call(port, "GET", "/api/rooms/%s/history" % uniq("none")), 404,
                 "room_not_found")
    expect_error(call(port, "GET", "/api/rooms/%s/count" % uniq("none")), 404,
                 "room_not_found")
    expect_error(call(port, "GET", "/api/rooms/x/else"), 404, "not_found")
    st, body, hdrs = call(port, "GET", "/api/publish")
    expect_error((st, body), 405, "method_not_allowed")
    eq(hdrs.get("Allow"), "POST", "Allow")
    expect_error(call(port, "POST", "/api/rooms", {}), 405, "method_not_allowed")
    # bodies
    expect_error(call(port, "POST", "/api/publish", raw=b"{not json"), 400, "bad_json")
    expect_error(call(port, "POST", "/api/publish", raw=b"[1,2]"), 400, "bad_json")
    expect_error(call(port, "POST", "/api/publish", raw=b'{"room_id":"a","content":"\xff"}'),
                 400, "bad_json")
    expect_error(call(port, "POST", "/api/publish", raw=b""), 400, "bad_json")
    expect_error(call(port, "POST", "/api/publish", {"content": "x"}), 400, "missing_field")
    expect_error(call(port, "POST", "/api/publish", {"room_id": "r"}), 400, "missing_field")
    expect_error(call(port, "POST", "/api/publish", {"room_id": 5, "content": "x"}), 400,
                 "invalid_field")
    expect_error(call(port, "POST", "/api/publish", {"room_id": "", "content": "x"}), 400,
                 "invalid_field")
    expect_error(call(port, "POST", "/api/publish", {"room_id": "r", "content": 5}), 400,
                 "invalid_field")
    expect_error(call(port, "POST", "/api/send", {"user_id": "u"}), 400, "missing_field")
    expect_error(call(port, "POST", "/api/disconnect", {"user_id": "u", "code": 1006}), 400,
                 "invalid_field")
    expect_error(call(port, "POST", "/api/disconnect", {"user_id": "u", "code": "x"}), 400,
                 "invalid_field")
    # oversize: refused from Content-Length before the body is read
    expect_error(call(port, "POST", "/api/publish",
                      raw=json.dumps({"room_id": "r", "content": "x" * 70000}).encode()),
                 413, "too_big")
    s = socket.create_connection(("127.0.0.1", port), timeout=rctest.tmo(5))
    s.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
              TOKEN.encode() + b"\r\nContent-Length: 99999999999\r\n\r\n")
    resp = s.recv(4096).decode()
    s.close()
    check(resp.startswith("HTTP/1.1 413"), "huge Content-Length: %r" % resp[:40])
    s = socket.create_connection(("127.0.0.1", port), timeout=rctest.tmo(5))
    s.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    resp = s.recv(4096).decode()
    s.close()
    check(resp.startswith("HTTP/1.1 400") and "chunked_body" in resp, "chunked: %r" % resp[:60])


@server("--echo", "--admin", "127.0.0.1:0")
def test_api_off_without_token(srv):
    port = admin_port(srv)
    expect_error(call(port, "GET", "/api/rooms"), 404, "api_disabled")
    expect_error(call(port, "POST", "/api/publish", {"room_id": "r", "content": "x"}), 404,
                 "api_disabled")


@server("--echo", "--admin", "127.0.0.1:0", "--api-token", TOKEN)
def test_publish_needs_a_script(srv):
    port = admin_port(srv)
    expect_error(call(port, "POST", "/api/publish", {"room_id": "r", "content": "x"}), 404,
                 "no_publish_hook")
    eq(call(port, "GET", "/api/rooms")[0], 200, "the rest works with --echo")


def test_health_and_dashboard(srv):
    port = admin_port(srv)
    c = Client(srv)
    st, body, _ = call(port, "GET", "/health", headers={})
    eq((st, body["status"]), (200, "ok"), "/health")
    check(body["active_connections"] >= 1, "active_connections %r" % body)
    st, text, hdrs = call(port, "GET", "/", headers={})
    eq(st, 200, "dashboard")
    check(hdrs["Content-Type"].startswith("text/html"), "HTML")
    check("/stats/history" in text and "<svg" in text, "the dashboard page")
    check("http://" not in text.replace("http://127", "") and "https://" not in text,
          "nothing loaded from the internet")
    st, s, _ = call(port, "GET", "/stats", headers={})
    for k in ("active_connections", "rates", "rooms_total", "rooms_top", "per_worker"):
        check(k in s, "/stats has %s" % k)
    check("msgs_in_per_sec" in s["rates"] and "msgs_out_per_sec" in s["rates"], "rates")
    st, h, _ = call(port, "GET", "/stats/history", headers={})
    check(st == 200 and isinstance(h["samples"], list), "/stats/history")
    c.close()


def test_slow_clients_cannot_stall_health(srv):
    """200 clients that connect and send half a request head, then stall,
    hold the admin port; /health still answers, and quickly."""
    port = admin_port(srv)
    slow = []
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=rctest.tmo(5))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        # More than the client cap (256) in total: the oldest stalled ones yield.
        for i in range(80):
            s = socket.create_connection(("127.0.0.1", port), timeout=rctest.tmo(5))
            s.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            slow.append(s)
        worst = 0.0
        for i in range(20):
            t0 = time.monotonic()
            st, body, _ = call(port, "GET", "/health", headers={})
            dt = time.monotonic() - t0
            worst = max(worst, dt)
            eq(st, 200, "/health under slow clients")
        check(worst < 0.1 * (4 if os.environ.get("RC_SANITIZE") else 1),
              "/health took %.0f ms with 280 slow clients" % (worst * 1000))
        s = call(port, "GET", "/stats", headers={})[1]
        check(s["admin"]["evicted"] >= 24, "stalled clients were evicted: %r" % s["admin"])
    finally:
        for s in slow:
            s.close()


TMP = rctest.scratch_dir("rc81-")
BROKEN = os.path.join(TMP, "hooks.lua")
with open(BROKEN, "w") as f:
    f.write("return { on_message = function() end,\n"
            "  on_api_publish = function(room, body)\n"
            "    if body.content == 'raw' then return '{\"plain\":true}', { stamp = false } end\n"
            "    if body.content == 'no' then return nil, 'forbidden_room', 'not here' end\n"
            "    error('boom') end }\n")


@server("-s", BROKEN, "--admin", "127.0.0.1:0", "--api-token", TOKEN)
def test_publish_hook_outcomes(srv):
    port = admin_port(srv)
    expect_error(call(port, "POST", "/api/publish", {"room_id": "r", "content": "x"}), 503,
                 "script_error")
    expect_error(call(port, "POST", "/api/publish", {"room_id": "r", "content": "no"}), 400,
                 "forbidden_room")
    st, body, _ = call(port, "POST", "/api/publish", {"room_id": "r", "content": "raw"})
    eq(st, 200, "a hook's own payload")
    st, h, _ = call(port, "GET", "/api/rooms/r/history")
    eq(h["messages"][-1], {"plain": True}, "stored as the hook returned it (no stamp)")


def test_publish_while_draining(srv):
    """SIGTERM starts the drain: /health turns 503 and publishes get 503
    draining while the server waits for its clients' closing handshakes."""
    other = rctest.Server(ARGS + ("--close-timeout", "5")).start()
    try:
        port = admin_port(other)
        c = Client(other)  # never answers the server's close: the drain waits
        c.join(uniq("d"), user=uniq("u"))
        other.proc.send_signal(rctest.signal.SIGTERM)
        deadline = time.monotonic() + rctest.tmo(5)
        while call(port, "GET", "/health", headers={})[0] != 503:
            check(time.monotonic() < deadline, "/health never turned 503")
            time.sleep(0.02)
        expect_error(call(port, "POST", "/api/publish", {"room_id": "r", "content": "x"}), 503,
                     "draining")
        c.conn.close()
    finally:
        problems = other.stop()
        check(not problems, "draining server: %s" % problems)


def test_sqlite_store_across_restart(srv):
    """With the SQLite store the API's publishes are sequenced and stored by
    the same pipeline as members': history (store.read) answers after a
    restart, for a room nobody is in, with the same epoch, and the next
    publish continues the seq."""
    db = os.path.join(TMP, uniq("api") + ".db")
    args = ARGS + ("--history", "sqlite:" + db)
    room = uniq("durable")
    one = rctest.Server(args).start()
    try:
        port = admin_port(one)
        seqs = [call(port, "POST", "/api/publish", {"room_id": room, "content": "m%d" % i})[1]
                for i in range(3)]
        eq([x.get("seq") for x in seqs], [1, 2, 3], "publish seqs")
        st, h, _ = call(port, "GET", "/api/rooms/%s/history" % room)
        eq((st, h["last_seq"], [m["content"] for m in h["messages"]]), (200, 3, ["m0", "m1", "m2"]),
           "history before the restart")
        epoch = h["epoch"]
        check(epoch, "an epoch")
    finally:
        problems = one.stop()
        check(not problems, "first server: %s" % problems)
    two = rctest.Server(args).start()
    try:
        port = admin_port(two)
        st, h, _ = call(port, "GET", "/api/rooms/%s/history?limit=2" % room)
        eq(st, 200, "history after the restart (%r)" % (h,))
        eq((h["epoch"], h["last_seq"]), (epoch, 3), "same epoch and last seq")
        eq([m["seq"] for m in h["messages"]], [2, 3], "the newest two, oldest first")
        st, h, _ = call(port, "GET", "/api/rooms/%s/history?before=2" % room)
        eq([m["content"] for m in h["messages"]], ["m0"], "paging back with before")
        eq(call(port, "POST", "/api/publish", {"room_id": room, "content": "m3"})[1], {"seq": 4},
           "the seq continues")
        st, h, _ = call(port, "GET", "/api/rooms/%s/history?since=3" % room)
        eq([(m["seq"], m["content"]) for m in h["messages"]], [(4, "m3")], "stored")
    finally:
        problems = two.stop()
        check(not problems, "second server: %s" % problems)


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
