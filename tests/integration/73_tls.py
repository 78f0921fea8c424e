#!/usr/bin/python3
"""73_tls - wss:// with a throwaway self-signed certificate: echo through
python3-websockets (small and 1 MiB messages: partial TLS writes), raw frames
through an ssl-wrapped socket, and a plain-TCP client on the TLS port failing
cleanly without disturbing a wss client."""
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
import websockets  # noqa: E402
from rctest import Conn, check, eq, tmo  # noqa: E402
from rcadmin import admin_port, conf, make_cert, metrics, total, wss_port  # noqa: E402

CERT, KEY = make_cert()
TLS_CONF = conf("tls.lua", "return {\n  echo = true,\n  tls_cert = %r,\n  tls_key = %r,\n"
                "  tls_port = 0,\n}\n" % (CERT, KEY))
ARGS = ("-c", TLS_CONF, "--admin", "127.0.0.1:0")


def client_ctx():
    ctx = ssl.create_default_context(cafile=CERT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def run(coro):
    return rctest.run(coro, 20)


def test_wss_echo_websockets(srv):
    port = wss_port(srv)

    async def go():
        async with websockets.connect("wss://localhost:%d/ws" % port, ssl=client_ctx(),
                                      max_size=4 << 20) as ws:
            for msg in ("hello", "é" * 100, b"\x00\x01\x02" * 1000):
                await ws.send(msg)
                eq(await ws.recv(), msg, "echo over TLS")
            big = os.urandom(1 << 20)
            await ws.send(big)
            eq(await ws.recv(), big, "1 MiB echo over TLS")
            await ws.close()
            eq(ws.close_code, 1000, "close code")
    run(go())


def test_tls12_only_client(srv):
    port = wss_port(srv)
    ctx = client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    async def go():
        async with websockets.connect("wss://localhost:%d/" % port, ssl=ctx) as ws:
            await ws.send("v1.2")
            eq(await ws.recv(), "v1.2", "echo over TLS 1.2")
            eq(ws.transport.get_extra_info("ssl_object").version(), "TLSv1.2", "version")
    run(go())


def test_raw_frames_over_tls(srv):
    # rctest's strict frame reader over an ssl-wrapped socket: a close
    # handshake ends with the server closing first.
    port = wss_port(srv)
    c = Conn.__new__(Conn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=tmo(5))
    c.sock = client_ctx().wrap_socket(raw, server_hostname="localhost")
    c.buf, c.eof, c.pending = bytearray(), False, []
    try:
        c.upgrade("/")
        c.send_frame(rctest.OP_TEXT, "raw")
        c.expect_message(rctest.OP_TEXT, "raw")
        c.send_close(1000)
        c.expect_close(1000)
    finally:
        c.close()


def test_plain_client_on_tls_port(srv):
    port = wss_port(srv)
    before = total(metrics(admin_port(srv)), "roomcast_tls_handshake_failures_total")

    async def go():
        async with websockets.connect("wss://localhost:%d/" % port, ssl=client_ctx()) as ws:
            await ws.send("before")
            eq(await ws.recv(), "before", "wss client before")
            # A plain HTTP upgrade sent to the TLS port: the server drops it.
            s = socket.create_connection(("127.0.0.1", port), timeout=tmo(5))
            s.sendall(rctest.upgrade_request())
            t0 = time.monotonic()
            try:
                data = s.recv(4096)
                while data and not data.startswith(b"HTTP/1.1 101"):
                    more = s.recv(4096)
                    if not more:
                        break
                    data += more
            except ConnectionResetError:
                data = b""
            s.close()
            check(not data.startswith(b"HTTP/1.1 101"), "plain client must not get a 101")
            check(time.monotonic() - t0 < tmo(3), "plain client dropped promptly")
            await ws.send("after")
            eq(await ws.recv(), "after", "wss client undisturbed")
    run(go())
    after = total(metrics(admin_port(srv)), "roomcast_tls_handshake_failures_total")
    check(after > before, "TLS handshake failure counted (%s -> %s)" % (before, after))


def test_plain_port_still_plain(srv):
    with srv.connect() as c:
        c.send_frame(rctest.OP_TEXT, "plain")
        c.expect_message(rctest.OP_TEXT, "plain")
        c.finish()


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
