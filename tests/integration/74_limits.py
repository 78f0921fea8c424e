#!/usr/bin/python3
"""74_limits - protection: 2000 half-open handshakes neither block a normal
client nor outlive the handshake timeout; max_connections (503), the Origin
allow-list (403), the per-IP cap and the per-connection message rate (1008),
each refusal visible in /metrics."""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
import websockets  # noqa: E402
from rctest import OP_TEXT, check, eq, server, tmo  # noqa: E402
from rcadmin import admin_port, conf, metrics, total, wait_metric  # noqa: E402

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))

FLOOD = conf("flood.lua", "return { echo = true, handshake_timeout = 2 }\n")
LIMITS = conf("limits.lua", "return {\n  echo = true,\n  max_connections = 3,\n"
              "  allowed_origins = { 'https://good.example' },\n  message_rate = 5,\n"
              "  message_burst = 5,\n}\n")
PER_IP = conf("perip.lua", "return { echo = true, max_connections_per_ip = 4 }\n")
ADMIN = ("--admin", "127.0.0.1:0")


@server("-c", FLOOD, *ADMIN)
def test_half_open_flood(srv):
    socks = []
    try:
        for _ in range(2000):
            s = socket.create_connection((srv.host, srv.port), timeout=tmo(5))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(s)
        t0 = time.monotonic()

        async def chat():  # asyncio (epoll): fds above 1024 are fine
            async with websockets.connect(rctest.ws_url(srv, "/")) as ws:
                for i in range(10):
                    await ws.send("chat %d" % i)
                    eq(await ws.recv(), "chat %d" % i, "echo during the flood")
        rctest.run(chat(), 10)
        check(time.monotonic() - t0 < tmo(1.5), "normal client served during the flood")
        # Every half-open one is answered 408 and closed at the timeout (2 s).
        deadline = time.monotonic() + tmo(6)
        closed = 0
        for s in socks:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = s.recv(4096)
                while data:
                    data = s.recv(4096)
                closed += 1
            except ConnectionResetError:
                # closed too: a socket we reach after the server's lingering
                # close gave up on us is reset rather than FIN'd
                closed += 1
            except socket.timeout:
                pass
        eq(closed, len(socks), "half-open connections closed by the handshake timeout")
    finally:
        for s in socks:
            s.close()
    m = metrics(admin_port(srv))
    check(total(m, "roomcast_handshake_timeouts_total") >= 2000, "timeouts counted")


@server("-c", LIMITS, *ADMIN)
def test_max_connections_503(srv):
    wait_metric(admin_port(srv), "roomcast_conns_open", 0)  # the previous run's clients are gone
    conns = [srv.connect() for _ in range(3)]
    try:
        with srv.raw() as c:
            c.send(rctest.upgrade_request())
            r = c.read_response()
            eq(r.status, 503, "over max_connections")
        conns.pop().finish()
        # A slot is free again once the server has released the closed
        # connection (it lingers until our FIN): retry for a bounded time.
        deadline = time.monotonic() + tmo(3)
        while True:
            try:
                with srv.connect() as c:
                    c.finish()
                break
            except rctest.Failure:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        for c in conns:
            c.close()
    time.sleep(0.1)
    m = metrics(admin_port(srv))
    check(total(m, "roomcast_refused_connections_total", reason="max_connections") >= 1,
          "503 counted")
    check(total(m, "roomcast_handshake_refusals_total", status="503") >= 1, "503 by status")
    check(total(m, "roomcast_handshake_refusals_by_reason_total", reason="max_connections") >= 1,
          "503 by reason")


@server("-c", LIMITS, *ADMIN)
def test_origin_allow_list(srv):
    with srv.raw() as c:
        c.send(rctest.upgrade_request(headers=[("Origin", "https://evil.example")]))
        eq(c.read_response().status, 403, "bad Origin")
    with srv.connect(headers=[("Origin", "https://good.example")]) as c:
        c.finish()
    with srv.connect() as c:  # no Origin: not a browser
        c.finish()
    m = metrics(admin_port(srv))
    check(total(m, "roomcast_refused_connections_total", reason="origin") >= 1, "403 counted")
    check(total(m, "roomcast_handshake_refusals_by_reason_total", reason="origin") >= 1,
          "403 counted by reason")


@server("-c", LIMITS, *ADMIN)
def test_message_rate_1008(srv):
    with srv.connect() as c:
        for i in range(5):  # the burst passes
            c.send_frame(OP_TEXT, "m%d" % i)
            c.expect_message(OP_TEXT, "m%d" % i)
        for i in range(10):
            c.try_send(rctest.frame(OP_TEXT, "flood"))
        c.expect_fail(1008)
    m = metrics(admin_port(srv))
    check(total(m, "roomcast_refused_connections_total", reason="message_rate") >= 1,
          "1008 counted")


@server("-c", PER_IP, *ADMIN)
def test_per_ip_cap(srv):
    port = admin_port(srv)
    wait_metric(port, "roomcast_conns_open", 0)  # the previous run's clients are gone
    conns = [srv.connect() for _ in range(4)]
    try:
        s = socket.create_connection((srv.host, srv.port), timeout=tmo(5))
        s.sendall(rctest.upgrade_request())
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        s.close()
        eq(data, b"", "5th connection from one address closed without a response")
        conns.pop().finish()
        wait_metric(port, "roomcast_conns_open", 3)
        with srv.connect() as c:
            c.finish()
    finally:
        for c in conns:
            c.close()
    m = metrics(admin_port(srv))
    check(total(m, "roomcast_refused_connections_total", reason="per_ip") >= 1, "cap counted")


if __name__ == "__main__":
    rctest.main(globals(), default_args=("--echo", "--admin", "off"))
