"""22_deflate - permessage-deflate (RFC 7692) with real clients: the
negotiation answer for the RFC's offers (raw sockets), echoes of 0 B to
16 MiB through python3-websockets with compression on, every window size,
client_no_context_takeover, fragmented compressed messages with interleaved
pings, RSV1 rules (1002), corrupt data (1007), decompression bombs (1009
with the server's RSS unmoved), room broadcasts to a mix of deflate and plain
members (one compression per room message, byte-identical frames), and
--no-compression. Runs with -w 1 and -w 3 (RC_WORKERS)."""

import asyncio
import json
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rcadmin  # noqa: E402
import rctest  # noqa: E402
from rctest import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                    check, eq, run, tmo, ws_join, ws_url)

import websockets  # noqa: E402
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHAT = os.path.join(HERE, "..", "..", "scripts", "chat.lua")
ADMIN = ("--admin", "127.0.0.1:0")
ECHO = ("--echo", "--max-message", "20M") + ADMIN
ECHO_ALL = ECHO + ("--compression-max", "0")  # compress every size
ECHO_MAX = ECHO + ("--compression-max", "1000")
SMALL = ("--echo", "--max-message", "64K") + ADMIN
BOMB = ("--echo", "--max-message", "2M") + ADMIN
CHATARGS = ("-s", CHAT) + ADMIN
PLAIN = ("--echo", "--no-compression") + ADMIN

BASE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
TAIL = b"\x00\x00\xff\xff"


def compress(data, bits=15):
    """What a client sends: raw deflate, sync flush, tail removed (§7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    check(out.endswith(TAIL), "zlib sync flush tail")
    return out[:-4]


def inflate(data):
    d = zlib.decompressobj(-15)
    return d.decompress(data + TAIL)


def metrics(srv):
    return rcadmin.metrics(rcadmin.admin_port(srv))


def mtotal(m, name):
    return rcadmin.total(m, "roomcast_" + name)


def deflate_conn(srv, offer="permessage-deflate"):
    """A raw connection that negotiated permessage-deflate."""
    c = srv.connect("/ws", headers=[("Sec-WebSocket-Extensions", offer)])
    check(c.response.header("Sec-WebSocket-Extensions") is not None,
          "offer %r declined: %s" % (offer, c.response.raw_head))
    return c


def recv_data(c, timeout=5.0):
    """The next data message on a raw connection: (opcode, rsv of its first
    frame, payload as sent, number of frames)."""
    f = c.recv_frame(timeout)
    while f.opcode in (OP_PING, OP_PONG):
        f = c.recv_frame(timeout)
    check(f.opcode in (OP_TEXT, OP_BINARY, OP_CLOSE), "unexpected %r" % f)
    op, rsv, parts, n = f.opcode, f.rsv, [f.payload], 1
    while not f.fin:
        f = c.recv_frame(timeout)
        eq(f.opcode, OP_CONT, "continuation opcode")
        eq(f.rsv, 0, "RSV bits of a continuation frame")
        parts.append(f.payload)
        n += 1
    return op, rsv, b"".join(parts), n


def payload_of(op, rsv, data):
    return inflate(data) if rsv & 4 else data


# --- negotiation ------------------------------------------------------------------

NEGOTIATION = [
    # (header lines, expected answer or None)
    (["permessage-deflate"], BASE),
    (["permessage-deflate; client_max_window_bits"], BASE),
    (["permessage-deflate; client_max_window_bits=10"], BASE + "; client_max_window_bits=10"),
    (["permessage-deflate; server_max_window_bits=10"], BASE + "; server_max_window_bits=10"),
    (["permessage-deflate; server_no_context_takeover; client_no_context_takeover"], BASE),
    (["permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
      "permessage-deflate; client_max_window_bits"], BASE + "; server_max_window_bits=10"),
    (["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=12"],
     BASE + "; server_max_window_bits=12"),
    (["permessage-deflate; server_max_window_bits=8, permessage-deflate"], BASE),
    (["permessage-deflate; client_max_window_bits=\"11\""], BASE + "; client_max_window_bits=11"),
    (["permessage-deflate; bogus=1, permessage-deflate; client_max_window_bits=9"],
     BASE + "; client_max_window_bits=9"),
    (["permessage-deflate; bogus=\"<script>\""], None),
    (["permessage-deflate; server_max_window_bits=16"], None),
    (["permessage-deflate; server_max_window_bits=8"], None),
    (["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
    (["permessage-deflate; client_max_window_bits=\"1 0\""], None),
    (["foo; a=\"x, permessage-deflate\""], None),
    (["permessage-deflate;"], None),
]


@rctest.server(*ECHO)
def test_negotiation_answers(srv):
    for lines, want in NEGOTIATION:
        c = srv.connect("/ws", headers=[("Sec-WebSocket-Extensions", v) for v in lines])
        try:
            got = c.response.header("Sec-WebSocket-Extensions")
            eq(got, want, "answer to %r" % lines)
            eq(c.response.count("Sec-WebSocket-Extensions"), 1 if want else 0, "answer lines")
            # Declined or not, the connection works (uncompressed frames).
            c.send_frame(OP_TEXT, "still here")
            op, rsv, data, _ = recv_data(c)
            eq((op, rsv, data), (OP_TEXT, 0, b"still here"), "echo after %r" % lines)
            c.finish()
        finally:
            c.close()


@rctest.server(*PLAIN)
def test_no_compression_flag_declines(srv):
    with srv.connect("/ws", headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]) as c:
        eq(c.response.header("Sec-WebSocket-Extensions"), None, "answer with --no-compression")
        # Without the extension RSV1 is a protocol error.
        c.send_frame(OP_TEXT, compress(b"x" * 200), rsv=4)
        c.expect_fail(1002)


# --- echo through python3-websockets ------------------------------------------------

@rctest.server(*ECHO_ALL)
def test_websockets_echo_0_to_16mib(srv):
    sizes = [0, 1, 63, 64, 65, 125, 126, 1000, 65535, 65536, 100000, 1 << 20, 16 << 20]
    before = metrics(srv)

    async def main():
        async with websockets.connect(ws_url(srv), max_size=None, ping_interval=None) as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            check(ext and ext.startswith("permessage-deflate"), "negotiated: %r" % ext)
            for n in sizes:
                text = ('{"type":"chat","n":%d,"body":"' % n + "abcdefgh" * (n // 8 + 1))[:n]
                await ws.send(text)
                got = await asyncio.wait_for(ws.recv(), tmo(30))
                check(got == text, "text echo of %d bytes differs (got %d)" % (n, len(got)))
                blob = os.urandom(n // 2) + bytes(n - n // 2)
                await ws.send(blob)
                got = await asyncio.wait_for(ws.recv(), tmo(30))
                check(got == blob, "binary echo of %d bytes differs" % n)
    run(main())
    after = metrics(srv)
    raw_in = mtotal(after, "deflate_in_raw_bytes_total") - \
        mtotal(before, "deflate_in_raw_bytes_total")
    wire_in = mtotal(after, "deflate_in_wire_bytes_total") - \
        mtotal(before, "deflate_in_wire_bytes_total")
    raw_out = mtotal(after, "deflate_out_raw_bytes_total") - \
        mtotal(before, "deflate_out_raw_bytes_total")
    wire_out = mtotal(after, "deflate_out_wire_bytes_total") - \
        mtotal(before, "deflate_out_wire_bytes_total")
    check(raw_in > 2 * sum(sizes) // 2, "inflated bytes counted: %d" % raw_in)
    check(wire_in * 2 < raw_in, "client compression seen: %d -> %d" % (raw_in, wire_in))
    check(raw_out > sum(sizes), "compressed bytes counted: %d" % raw_out)
    check(wire_out * 2 < raw_out, "server compression: %d -> %d" % (raw_out, wire_out))
    check(mtotal(after, "deflate_negotiated_total") > mtotal(before, "deflate_negotiated_total"),
          "negotiated connections counted")


def echo_rsv(c, n):
    """Echoes n bytes of compressible text (sent compressed); returns the
    RSV bits of the answer after checking its bytes."""
    text = ('{"n":%d,"body":"' % n + "abcdefgh" * (n // 8 + 1))[:n].encode()
    c.send_frame(OP_TEXT, compress(text), rsv=4)
    op, rsv, data, _ = recv_data(c)
    eq(op, OP_TEXT, "echo opcode of %d bytes" % n)
    check(payload_of(op, rsv, data) == text, "echo of %d bytes differs" % n)
    return rsv


@rctest.server(*ECHO_MAX)
def test_compression_max_sends_longer_messages_plain(srv):
    """compression.max: a message longer than it goes uncompressed (RSV1
    clear), one at most that long compressed; the counters see only those."""
    with deflate_conn(srv) as c:
        before = metrics(srv)
        eq(echo_rsv(c, 1000), 4, "RSV1 of a 1000-byte answer (max 1000)")
        eq(echo_rsv(c, 1001), 0, "RSV1 of a 1001-byte answer (max 1000)")
        eq(echo_rsv(c, 300000), 0, "RSV1 of a 300000-byte answer (max 1000)")
        eq(echo_rsv(c, 200), 4, "RSV1 of a 200-byte answer (max 1000)")
        after = metrics(srv)
        eq(mtotal(after, "deflate_out_raw_bytes_total") -
           mtotal(before, "deflate_out_raw_bytes_total"), 1200, "raw bytes compressed")
        c.finish()


@rctest.server(*ECHO)
def test_compression_max_default_256k(srv):
    with deflate_conn(srv) as c:
        eq(echo_rsv(c, 256 * 1024), 4, "RSV1 of a 256 KiB answer (default max)")
        eq(echo_rsv(c, 256 * 1024 + 1), 0, "RSV1 of a 256 KiB + 1 answer (default max)")
        c.finish()


@rctest.server(*ECHO)
def test_every_window_size(srv):
    async def one(bits):
        ext = ClientPerMessageDeflateFactory(server_max_window_bits=bits,
                                             client_max_window_bits=bits)
        async with websockets.connect(ws_url(srv), max_size=None, ping_interval=None,
                                      compression=None, extensions=[ext]) as ws:
            ans = ws.response_headers.get("Sec-WebSocket-Extensions")
            eq(ans, BASE + "; server_max_window_bits=%d; client_max_window_bits=%d" %
               (bits, bits), "answer for window %d" % bits)
            for n in (100, 5000, (1 << bits) + 1000, 300000):
                text = "".join("w%d-%d " % (bits, i) for i in range(n // 5))[:n]
                await ws.send(text)
                eq(await asyncio.wait_for(ws.recv(), tmo(20)), text,
                   "echo of %d bytes, window %d" % (n, bits))

    async def main():
        for bits in range(9, 16):
            await one(bits)
    run(main())


@rctest.server(*ECHO)
def test_window_8_offer_declined_connection_goes_plain(srv):
    async def main():
        # websockets offers server_max_window_bits=8 alone; zlib cannot make an
        # 8-bit window, so the offer is declined and the connection is plain.
        ext = ClientPerMessageDeflateFactory(server_max_window_bits=8)
        try:
            async with websockets.connect(ws_url(srv), ping_interval=None, compression=None,
                                          extensions=[ext]) as ws:
                eq(ws.response_headers.get("Sec-WebSocket-Extensions"), None, "answer")
                await ws.send("plain " * 50)
                eq(await ws.recv(), "plain " * 50, "echo")
        except websockets.exceptions.NegotiationError as e:
            raise rctest.Failure("client refused the answer: %s" % e)
    run(main())


@rctest.server(*ECHO)
def test_client_no_context_takeover(srv):
    async def main():
        ext = ClientPerMessageDeflateFactory(client_no_context_takeover=True,
                                             server_no_context_takeover=True)
        async with websockets.connect(ws_url(srv), ping_interval=None, compression=None,
                                      extensions=[ext]) as ws:
            eq(ws.response_headers.get("Sec-WebSocket-Extensions"), BASE, "answer")
            for i in range(20):
                m = json.dumps({"type": "chat", "i": i, "text": "same words again " * 10})
                await ws.send(m)
                eq(await ws.recv(), m, "echo %d" % i)
    run(main())


# --- raw frames: fragmentation, RSV1 rules, bad data, bombs --------------------------

@rctest.server(*ECHO)
def test_fragmented_compressed_message_with_pings(srv):
    with deflate_conn(srv) as c:
        msg = ("fragmented κόσμε " * 500).encode()
        z = compress(msg)
        cuts = [0, 1, 7, len(z) // 2, len(z) - 1, len(z)]
        for i in range(len(cuts) - 1):
            part = z[cuts[i]:cuts[i + 1]]
            first, last = i == 0, i == len(cuts) - 2
            c.send_frame(OP_TEXT if first else OP_CONT, part, fin=last, rsv=4 if first else 0)
            if i == 2:
                c.send_frame(OP_PING, b"mid")
        op, rsv, data, _ = recv_data(c)
        eq(op, OP_TEXT, "opcode")
        eq(rsv, 4, "the echo is compressed (RSV1)")
        eq(inflate(data), msg, "inflated echo")
        # A compressed message of one frame, chopped into 1-byte writes.
        z = compress(b"\x00\x01binary" * 100)
        c.send_frame(OP_BINARY, z, rsv=4, chop=1)
        op, rsv, data, _ = recv_data(c)
        eq((op, payload_of(op, rsv, data)), (OP_BINARY, b"\x00\x01binary" * 100), "binary echo")
        # An uncompressed message on a deflate connection stays allowed (§6).
        c.send_frame(OP_TEXT, "short")
        eq(recv_data(c)[:3], (OP_TEXT, 0, b"short"), "below the threshold: plain")
        # An empty compressed message (§7.2.3.6: the payload may be 0x00).
        c.send_frame(OP_TEXT, b"\x00", rsv=4)
        eq(recv_data(c)[:3], (OP_TEXT, 0, b""), "empty compressed message")
        c.finish()


@rctest.server(*ECHO)
def test_rsv1_on_continuation_is_1002(srv):
    with deflate_conn(srv) as c:
        z = compress(b"a" * 300)
        c.send_frame(OP_TEXT, z[:5], fin=False, rsv=4)
        c.send_frame(OP_CONT, z[5:], fin=True, rsv=4)
        c.expect_fail(1002)


@rctest.server(*ECHO)
def test_rsv1_on_control_frame_is_1002(srv):
    with deflate_conn(srv) as c:
        c.send_frame(OP_PING, b"", rsv=4)
        c.expect_fail(1002)


@rctest.server(*ECHO)
def test_rsv2_with_deflate_is_1002(srv):
    with deflate_conn(srv) as c:
        c.send_frame(OP_TEXT, compress(b"b" * 100), rsv=6)
        c.expect_fail(1002)


@rctest.server(*ECHO)
def test_corrupt_compressed_data_is_1007(srv):
    with deflate_conn(srv) as c:
        c.send_frame(OP_BINARY, b"\x07\x00\xff\xee", rsv=4)  # BTYPE 11 (reserved)
        c.expect_fail(1007)


@rctest.server(*ECHO)
def test_invalid_utf8_after_inflating_is_1007(srv):
    with deflate_conn(srv) as c:
        c.send_frame(OP_TEXT, compress(b"valid then \xc3\x28 invalid" * 10), rsv=4)
        c.expect_fail(1007)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise rctest.Failure("no VmRSS for pid %d" % pid)


def zero_bomb(total, chunk=16 << 20):
    """A raw deflate stream of `total` zero bytes: one chunk compressed by a
    fresh compressor (no back-reference before its start, byte-aligned end
    after the sync flush), repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = c.compress(bytes(chunk)) + c.flush(zlib.Z_SYNC_FLUSH)
    return one * (total // chunk)


@rctest.server(*SMALL)
def test_incompressible_message_at_the_cap(srv):
    # 64 KiB of random bytes grow a little when deflated (stored blocks); the
    # cap is on the inflated size, so exactly max_message still passes, and
    # one byte more is 1009.
    async def main():
        async with websockets.connect(ws_url(srv), max_size=None, ping_interval=None) as ws:
            check(ws.response_headers.get("Sec-WebSocket-Extensions"), "negotiated")
            blob = os.urandom(64 * 1024)
            await ws.send(blob)
            eq(await asyncio.wait_for(ws.recv(), tmo(10)), blob, "64 KiB random echo")
            await ws.send(os.urandom(64 * 1024 + 1))
            try:
                await asyncio.wait_for(ws.recv(), tmo(10))
                raise rctest.Failure("a message over the cap was echoed")
            except websockets.exceptions.ConnectionClosed as e:
                eq(e.rcvd.code if e.rcvd else None, 1009, "close code")
    run(main())


@rctest.server(*SMALL)
def test_bomb_1kib_frame_is_1009(srv):
    # Deflate's best ratio is about 1:1032, so a 1 KiB frame inflates to about
    # 1 MiB: 16 times this server's 64 KiB message cap.
    z = zero_bomb(1 << 20, 1 << 20)[:-4]
    check(len(z) <= 1100, "bomb frame is %d bytes" % len(z))
    with deflate_conn(srv) as c:
        c.send_frame(OP_BINARY, z, rsv=4)
        c.expect_fail(1009)


@rctest.server(*BOMB)
def test_bomb_1gib_leaves_rss_unmoved(srv):
    z = zero_bomb(1 << 30)[:-4]  # about 1 MiB on the wire, 1 GiB inflated
    check(len(z) < (2 << 20), "bomb is %d bytes on the wire" % len(z))
    pid = srv.proc.pid
    # Warm up EVERY worker (the kernel picks one per connection): the first
    # large compressed message a worker reads touches its pool's streams,
    # all of its read buffer and its thread's malloc arena once, and a bomb
    # that was the first on a cold worker counted that (about 270 KiB per
    # worker with RC_WORKERS=3: "RSS grows with each bomb"). 96 KiB that do
    # not compress fill the read buffer and the inflate window.
    warm = os.urandom(96 * 1024)
    for _ in range(64):
        c = deflate_conn(srv)
        try:
            c.send_frame(OP_BINARY, compress(warm), rsv=4)
            recv_data(c)
            c.finish()
        finally:
            c.close()
        per_worker = metrics(srv).get("roomcast_deflate_in_wire_bytes_total", {})
        if per_worker and all(v >= len(warm) for v in per_worker.values()):
            break
    time.sleep(0.2)
    before = rss_kib(pid)
    after_each = []
    for _ in range(4):
        c = deflate_conn(srv)
        try:
            t0 = time.monotonic()
            c.send_frame(OP_BINARY, z, rsv=4)
            c.expect_fail(1009, timeout=10)
            # Inflation stops at the 2 MiB cap: far less work than 1 GiB.
            check(time.monotonic() - t0 < tmo(5), "the bomb took %.1fs" % (time.monotonic() - t0))
        finally:
            c.close()
        time.sleep(0.1)
        after_each.append(rss_kib(pid))
    # The 1 MiB frame and the output (stopped at the 2 MiB cap) are mmapped
    # blocks (main.c fixes malloc's mmap threshold) and go back to the kernel:
    # RSS does not move. 1 GiB would be 1048576 KiB.
    grown = after_each[-1] - before
    if os.environ.get("RC_VERBOSE"):
        print("    bomb RSS KiB: before %d, after each bomb %s" % (before, after_each))
    # (ASan keeps freed blocks in quarantine: RSS says nothing there.)
    if not rctest.SANITIZED:
        check(grown < 1024, "RSS grew %d KiB (%d -> %s KiB)" % (grown, before, after_each))
        check(after_each[-1] - after_each[0] < 512,
              "RSS grows with each bomb: %s KiB" % after_each)
    # The server still serves compressed traffic.
    with deflate_conn(srv) as c:
        c.send_frame(OP_TEXT, compress(b"after the bomb " * 20), rsv=4)
        op, rsv, data, _ = recv_data(c)
        eq(payload_of(op, rsv, data), b"after the bomb " * 20, "echo after the bomb")
        c.finish()


# --- rooms: a mix of deflate and plain members ------------------------------------------

def join_offer(srv, room, user, offer=None):
    """A raw client of srv that offered `offer` (None: no extension) and
    joined room as user."""
    headers = [("Sec-WebSocket-Extensions", offer)] if offer else []
    c = srv.connect("/ws", headers=headers)
    c.send_frame(OP_TEXT, json.dumps({"type": "join", "room_id": room, "user_id": user}))
    op, rsv, data, _ = recv_data(c)
    reply = json.loads(payload_of(op, rsv, data))
    eq((reply.get("type"), reply.get("room_id")), ("joined", room), "join reply")
    return c


def join_raw(srv, room, user, deflate):
    c = join_offer(srv, room, user, "permessage-deflate" if deflate else None)
    eq(c.response.header("Sec-WebSocket-Extensions") is not None, deflate, "negotiated")
    return c


@rctest.server(*CHATARGS)
def test_room_broadcast_mixed_members(srv):
    room = "mix-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
    zs = [join_raw(srv, room, "z%d" % i, True) for i in range(6)]
    ps = [join_raw(srv, room, "p%d" % i, False) for i in range(6)]
    pub = ps[0]
    try:
        before = metrics(srv)
        content = "a broadcast big enough to be worth compressing " * 20
        count = 5
        for i in range(count):
            pub.send_frame(OP_TEXT, json.dumps({"type": "broadcast", "room_id": room,
                                                "content": "%d %s" % (i, content)}))
        seen_z, seen_p = [], []
        for c in zs:
            got = [recv_data(c) for _ in range(count)]
            for op, rsv, data, n in got:
                eq(rsv, 4, "a deflate member gets RSV1 frames")
                eq(n, 1, "one frame per message")
            seen_z.append([g[2] for g in got])
        for c in ps:  # the publisher gets its own broadcasts too
            got = [recv_data(c) for _ in range(count)]
            for op, rsv, data, n in got:
                eq(rsv, 0, "a plain member gets plain frames")
            seen_p.append([g[2] for g in got])
        # Encode once: every deflate member got the very same compressed bytes,
        # every plain member the same plain bytes, and they say the same thing.
        for s in seen_z[1:]:
            check(s == seen_z[0], "deflate members got different bytes")
        for s in seen_p[1:]:
            check(s == seen_p[0], "plain members got different bytes")
        for zb, pb in zip(seen_z[0], seen_p[0]):
            eq(inflate(zb), pb, "compressed and plain variants")
            check(len(zb) * 3 < len(pb), "compressed %d -> %d" % (len(pb), len(zb)))
            m = json.loads(pb)
            eq(m["type"], "broadcast", "type")
        # The room compressed each message once, not once per deflate member:
        # the replies to the publisher (plain) and the broadcasts are all.
        after = metrics(srv)
        raw = mtotal(after, "deflate_out_raw_bytes_total") - \
            mtotal(before, "deflate_out_raw_bytes_total")
        plain_total = sum(len(p) for p in seen_p[0])
        eq(raw, plain_total, "bytes compressed for %d broadcasts to 6 deflate members" % count)
        # A deflate member that publishes gets the same treatment.
        zs[0].send_frame(OP_TEXT, compress(json.dumps(
            {"type": "broadcast", "room_id": room, "content": content}).encode()), rsv=4)
        for c in zs[1:]:
            op, rsv, data, _ = recv_data(c)
            eq(json.loads(inflate(data))["content"], content, "broadcast from a deflate member")
        for c in ps:
            op, rsv, data, _ = recv_data(c)
            eq(json.loads(data)["content"], content, "to a plain member")
    finally:
        for c in zs + ps:
            c.close()


@rctest.server(*CHATARGS)
def test_room_member_with_small_window_and_direct_messages(srv):
    # The shared room frame is made with a 15-bit window. A member that asked
    # for server_max_window_bits=9 may get it only when the message is at most
    # 512 bytes (no back-reference reaches further); a longer one goes plain.
    room = "win-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
    tag = "%d%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
    small = join_offer(srv, room, "s9-" + tag, "permessage-deflate; server_max_window_bits=9")
    eq(small.response.header("Sec-WebSocket-Extensions"), BASE + "; server_max_window_bits=9",
       "answer")
    big = join_offer(srv, room, "w15-" + tag, "permessage-deflate")
    plain = join_raw(srv, room, "pl-" + tag, False)
    try:
        for n, want_small_rsv in ((200, 4), (3000, 0)):
            content = ("words repeat, " * 300)[:n]
            plain.send_frame(OP_TEXT, json.dumps({"type": "broadcast", "room_id": room,
                                                  "content": content}))
            op, rsv, data, _ = recv_data(small)
            eq(rsv, want_small_rsv, "window-9 member, %d-byte content: RSV1" % n)
            if rsv:
                data = zlib.decompressobj(-9).decompress(data + TAIL)  # a 9-bit window
            eq(json.loads(data)["content"], content, "window-9 member content")
            op, rsv, data, _ = recv_data(big)
            eq(rsv, 4, "window-15 member: compressed")
            eq(json.loads(inflate(data))["content"], content, "window-15 member content")
            op, rsv, data, _ = recv_data(plain)
            eq((rsv, json.loads(data)["content"]), (0, content), "plain member")
        # Direct messages (per-connection traffic) are compressed per
        # connection, with that connection's window.
        text = "a direct message long enough to compress, " * 30
        plain.send_frame(OP_TEXT, json.dumps({"type": "direct", "to": "s9-" + tag,
                                              "content": text}))
        op, rsv, data, _ = recv_data(small)
        eq(rsv, 4, "direct to the window-9 member: compressed")
        got = json.loads(zlib.decompressobj(-9).decompress(data + TAIL))
        eq((got["type"], got["content"]), ("direct", text), "direct message")
        big.send_frame(OP_TEXT, json.dumps({"type": "direct", "to": "pl-" + tag,
                                            "content": text}))
        op, rsv, data, _ = recv_data(plain)
        eq((rsv, json.loads(data)["content"]), (0, text), "direct to a plain member")
    finally:
        for c in (small, big, plain):
            c.close()


@rctest.server(*CHATARGS)
def test_websockets_chat_room_with_compression(srv):
    room = "wsroom-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))

    async def member(user, compression):
        return await ws_join(srv, room, user, compression=compression)

    async def main():
        a = await member("a", "deflate")
        b = await member("b", None)
        c = await member("c", "deflate")
        text = "hello from a, " * 40
        await a.send(json.dumps({"type": "broadcast", "room_id": room, "content": text}))
        for ws in (a, b, c):
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), tmo(5)))
                if m.get("type") == "broadcast":
                    break
            eq(m["content"], text, "content")
        for ws in (a, b, c):
            await ws.close()
    run(main())


if __name__ == "__main__":
    rctest.main(globals(), default_args=ECHO)
