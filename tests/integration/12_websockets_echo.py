"""12_websockets_echo - a real third-party client (python3-websockets, asyncio)
against `roomcast --echo --max-message 64M`: many concurrent clients, ordered
echoes, a 10 MiB message, the close handshake, with and without
permessage-deflate offered."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, run, tmo, ws_url  # noqa: E402

websockets = rctest.need_websockets()

ARGS = ("--echo", "--max-message", "64M")


async def client(srv, n, count, compression=None):
    async with websockets.connect(ws_url(srv, "/ws" if n % 2 else "/"), max_size=None,
                                  compression=compression, ping_interval=None) as ws:
        sent = []
        for i in range(count):
            if i % 3 == 2:
                m = os.urandom(i * 7 % 300)
            else:
                m = "client %d message %d %s" % (n, i, "κόσμε" * (i % 5))
            sent.append(m)
        # Send everything first, then read: the server must queue the echoes
        # and keep their order.
        for m in sent:
            await ws.send(m)
        for i, m in enumerate(sent):
            got = await asyncio.wait_for(ws.recv(), tmo(20))
            if got != m:
                raise rctest.Failure("client %d message %d: got %s, want %s" %
                                     (n, i, rctest.short(got), rctest.short(m)))
        await ws.close()
        eq(ws.close_code, 1000, "client %d close code" % n)
    return n


def test_50_clients_100_messages_in_order(srv):
    async def main():
        done = await asyncio.gather(*(client(srv, n, 100) for n in range(50)))
        eq(sorted(done), list(range(50)), "clients finished")
    run(main())


def test_50_clients_with_deflate_offered(srv):
    # websockets offers permessage-deflate; the server may accept it (RFC 7692,
    # server_no_context_takeover) or not. Either way the echoes must match.
    async def main():
        done = await asyncio.gather(*(client(srv, n, 20, compression="deflate")
                                      for n in range(50)))
        eq(len(done), 50, "clients finished")
    run(main())


def test_10mib_message(srv):
    async def main():
        async with websockets.connect(ws_url(srv, "/"), max_size=None, compression=None,
                                      ping_interval=None) as ws:
            big = os.urandom(10 * 1024 * 1024)
            await ws.send(big)
            got = await asyncio.wait_for(ws.recv(), tmo(30))
            check(isinstance(got, bytes), "10 MiB binary echoed as %s" % type(got))
            check(got == big, "10 MiB echo differs (len %d)" % len(got))
            text = "κόσμε-" * (10 * 1024 * 1024 // 11)
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), tmo(30))
            check(got == text, "10 MiB text echo differs (len %d)" % len(got))
            await ws.close()
            eq(ws.close_code, 1000, "close code")
    run(main())


def test_close_handshake_1000(srv):
    async def main():
        ws = await websockets.connect(ws_url(srv, "/"), compression=None, ping_interval=None)
        await ws.send("bye")
        eq(await ws.recv(), "bye", "echo")
        await asyncio.wait_for(ws.close(code=1000, reason="done"), tmo(5))
        await asyncio.wait_for(ws.wait_closed(), tmo(5))
        eq(ws.close_code, 1000, "close code from the server")
        check(ws.closed, "connection not closed")
        # The server closes TCP first (§7.1.1): the transport is gone.
        check(ws.transport is None or ws.transport.is_closing(), "TCP still open")
    run(main())


def test_close_with_app_code_echoed(srv):
    async def main():
        ws = await websockets.connect(ws_url(srv, "/"), compression=None, ping_interval=None)
        await ws.close(code=4321, reason="app reason")
        eq(ws.close_code, 4321, "echoed close code")
    run(main())


def test_ping_pong(srv):
    async def main():
        async with websockets.connect(ws_url(srv, "/"), compression=None, ping_interval=None) as ws:
            for payload in (b"", b"abc", os.urandom(125)):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, tmo(5))
            await ws.send("after pings")
            eq(await ws.recv(), "after pings", "echo after pings")
    run(main())


def test_fragmented_send(srv):
    async def main():
        async with websockets.connect(ws_url(srv, "/"), compression=None, ping_interval=None) as ws:
            parts = ["part-%d " % i for i in range(50)]
            await ws.send(iter(parts))  # websockets sends an iterable as fragments
            eq(await ws.recv(), "".join(parts), "joined fragments")
    run(main())


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
