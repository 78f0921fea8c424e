"""41_lua_plugins - plugins/jwt_auth.lua and plugins/ratelimit.lua in front of
scripts/chat.lua, enabled with --plugin NAME=PATH=JSON: joins refused without
a valid HS256 token (tokens made here with hmac/hashlib), accepted with one
(auth message, ?token= query, Authorization: Bearer), expired / wrongly signed
/ alg-confused tokens refused at the upgrade (401) and in auth messages, the
`rooms` claim, and the rate limit's error code."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rclua import Client, jwt, plugin_arg, script, uniq  # noqa: E402
from rctest import check, eq  # noqa: E402

SECRET = "s3cret-for-tests"
JWT_ARGS = ("-s", script("chat.lua"),
            "--plugin", plugin_arg("jwt_auth", {"secret": SECRET, "auth_timeout": 0}))
RL_ARGS = ("-s", script("chat.lua"),
           "--plugin", plugin_arg("ratelimit", {"rate": 5, "burst": 5}))


def token(sub, ttl=3600, **extra):
    claims = {"sub": sub, "exp": int(time.time()) + ttl}
    claims.update(extra)
    return jwt(claims, SECRET)


def refused(srv, path, headers=None):
    c = srv.raw()
    try:
        c.send(rctest.upgrade_request(path, headers=headers))
        return c.read_response()
    finally:
        c.close()


@rctest.server(*JWT_ARGS)
def test_join_without_token_refused(srv):
    c = Client(srv)
    c.send({"type": "join", "room_id": uniq("r"), "user_id": "mallory"})
    c.expect_error("not_authorized")
    c.send({"type": "broadcast", "room_id": "x", "content": "x"})
    c.expect_error("not_authorized")
    c.close()


@rctest.server(*JWT_ARGS)
def test_auth_message_then_join(srv):
    user, room = uniq("alice"), uniq("r")
    c = Client(srv)
    c.send({"type": "auth", "token": token(user), "id": "a"})
    c.expect(type="authenticated", user_id=user, id="a")
    c.join(room)
    c.send({"type": "broadcast", "room_id": room, "content": "hi"})
    eq(c.expect(type="broadcast")["sender"], user, "sender is the token's sub")
    c.close()


@rctest.server(*JWT_ARGS)
def test_token_in_query_and_bearer(srv):
    u1, u2, room = uniq("q"), uniq("b"), uniq("r")
    a = Client(srv, "/ws?token=" + token(u1))
    b = Client(srv, "/ws", headers=[("Authorization", "Bearer " + token(u2))])
    a.join(room)
    b.join(room)
    a.send({"type": "presence", "room_id": room})
    eq(a.expect(type="presence")["count"], 2, "both in")
    b.send({"type": "broadcast", "room_id": room, "content": "x"})
    eq(a.expect(type="broadcast")["sender"], u2, "bearer identity")
    b.expect(type="broadcast")
    a.close()
    b.close()


@rctest.server(*JWT_ARGS)
def test_bad_tokens_refused_at_upgrade(srv):
    now = int(time.time())
    bad = {
        "expired": jwt({"sub": "x", "exp": now - 60}, SECRET),
        "wrong secret": jwt({"sub": "x", "exp": now + 60}, "other"),
        "alg none": jwt({"sub": "x", "exp": now + 60}, SECRET, alg="none"),
        "garbage": "not.a.token",
        "not yet valid": jwt({"sub": "x", "nbf": now + 3600}, SECRET),
    }
    for what, tok in bad.items():
        r = refused(srv, "/ws?token=" + tok)
        eq(r.status, 401, "%s: status" % what)
    r = refused(srv, "/ws", headers=[("Authorization", "Bearer " + bad["expired"])])
    eq(r.status, 401, "expired bearer")


@rctest.server(*JWT_ARGS)
def test_bad_token_in_auth_message(srv):
    c = Client(srv)
    c.send({"type": "auth", "token": jwt({"sub": "x", "exp": int(time.time()) - 5}, SECRET)})
    m = c.expect_error("not_authorized")
    check("expired" in m["message"], "says expired: %r" % m["message"])
    c.send({"type": "auth", "token": jwt({"sub": "x"}, "nope")})
    c.expect_error("not_authorized")
    c.send({"type": "auth"})
    c.expect_error("missing_field")
    # still usable after failures
    c.send({"type": "auth", "token": token(uniq("late"))})
    c.expect(type="authenticated")
    c.close()


@rctest.server(*JWT_ARGS)
def test_rooms_claim(srv):
    c = Client(srv, "/ws?token=" + token(uniq("g"), rooms=["game:*"]))
    c.join("game:" + uniq("x"))
    c.send({"type": "join", "room_id": uniq("lobby")})
    c.expect_error("forbidden_room")
    c.close()


@rctest.server(*RL_ARGS)
def test_rate_limited(srv):
    room = uniq("r")
    c = Client(srv)
    c.join(room, uniq("u"))
    for i in range(15):
        c.send({"type": "broadcast", "room_id": room, "content": "m%d" % i})
    ok = limited = 0
    for _ in range(15):
        m = c.recv()
        if m["type"] == "broadcast":
            ok += 1
        else:
            eq(m.get("code"), "rate_limited", "error code")
            limited += 1
    check(limited >= 5, "at least 5 of 15 rate limited (got %d, ok %d)" % (limited, ok))
    check(ok >= 4, "the burst passes (ok %d)" % ok)
    time.sleep(1.0)  # the bucket refills
    c.send({"type": "broadcast", "room_id": room, "content": "later"})
    c.expect(type="broadcast", content="later")
    c.close()


if __name__ == "__main__":
    rctest.main(globals(), default_args=JWT_ARGS)
