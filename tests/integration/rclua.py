"""rclua - helpers for the Lua-layer integration tests (40_* to 43_*): paths of
the shipped scripts and plugins, HS256 tokens, and a JSON client over
rctest.Conn (a raw, strict WebSocket client)."""

import base64
import hashlib
import hmac
import itertools
import json
import os
import time

import rctest
from rctest import OP_BINARY, OP_TEXT, Failure, check, eq

SRC = os.environ.get("RC_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_seq = itertools.count(1)


def uniq(prefix):
    """A name no other test (or repeat) of this process uses."""
    return "%s%d_%d" % (prefix, os.getpid() % 10000, next(_seq))


def script(name):
    return os.path.join(SRC, "scripts", name)


def plugin(name):
    return os.path.join(SRC, "plugins", name)


def plugin_arg(name, config=None):
    """--plugin NAME=PATH[=JSON]"""
    arg = "%s=%s" % (name, plugin(name + ".lua"))
    if config is not None:
        arg += "=" + json.dumps(config)
    return arg


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret, alg="HS256"):
    """An HS256 JWT (RFC 7519) signed with secret (signature computed with
    HMAC-SHA256 whatever `alg` says, to test the alg check)."""
    h = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


class Client:
    """One connection speaking JSON text frames."""

    def __init__(self, srv, path="/ws", headers=None):
        self.conn = srv.connect(path, headers=headers)

    def send(self, obj):
        data = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        self.conn.send_frame(OP_TEXT, data)

    def send_binary(self, data):
        self.conn.send_frame(OP_BINARY, data)

    def raw(self, timeout=5.0):
        try:
            ev = self.conn.recv(timeout)
        except rctest.Timeout:
            raise Failure("no message within %.1fs" % rctest.tmo(timeout))
        except rctest.Closed:
            raise Failure("connection closed while waiting for a message")
        check(isinstance(ev, rctest.Message), "expected a message, got %r" % ev)
        eq(ev.opcode, OP_TEXT, "opcode")
        return ev.payload

    def recv(self, timeout=5.0):
        p = self.raw(timeout)
        try:
            return json.loads(p)
        except ValueError:
            raise Failure("not JSON: %r" % p)

    def expect(self, timeout=5.0, **fields):
        m = self.recv(timeout)
        for k, v in fields.items():
            if m.get(k) != v:
                raise Failure("expected %s=%r in %r" % (k, v, m))
        return m

    def expect_error(self, code, timeout=5.0, id=None):
        m = self.recv(timeout)
        check(m.get("type") == "error", "expected error %s, got %r" % (code, m))
        eq(m.get("code"), code, "error code (message %r)" % m.get("message"))
        check(isinstance(m.get("message"), str) and m["message"], "error without a message")
        if id is not None:
            eq(m.get("id"), id, "error id")
        return m

    def nothing(self, seconds=0.2):
        self.conn.expect_nothing(seconds)

    def join(self, room, user=None, **extra):
        msg = {"type": "join", "room_id": room}
        if user is not None:
            msg["user_id"] = user
        msg.update(extra)
        self.send(msg)
        return self.expect(type="joined", room_id=room)

    def close(self):
        self.conn.finish()


def wait_log(srv, pattern, count=1, timeout=10.0):
    """Waits until `count` log lines contain pattern; returns them."""
    deadline = time.monotonic() + rctest.tmo(timeout)
    while True:
        lines = [l for l in srv.log() if pattern in l]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise Failure("%d log lines with %r expected, got %d:\n%s" %
                          (count, pattern, len(lines), srv.log_tail()))
        time.sleep(0.02)


def seed_chat(srv):
    """The seed's protocol against scripts/chat.lua: two users join a room
    (joined carries seq and epoch), one broadcasts, both receive it."""
    alice, bob = Client(srv), Client(srv)
    for c, user in ((alice, "alice123"), (bob, "bob456")):
        c.send({"type": "join", "room_id": "game_lobby", "user_id": user})
        j = c.recv()
        eq((j["type"], j["room_id"], type(j["seq"]), type(j["epoch"])),
           ("joined", "game_lobby", int, str), "joined reply (seq and epoch)")
    alice.send('{"type":"broadcast","room_id":"game_lobby","user_id":"alice123",'
               '"content":"Hello everyone!"}')
    for c in (alice, bob):
        m = c.recv()
        eq((m["type"], m["room_id"], m["sender"], m["content"]),
           ("broadcast", "game_lobby", "alice123", "Hello everyone!"), "broadcast")
    alice.close()
    bob.close()
