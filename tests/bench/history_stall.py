#!/usr/bin/python3
"""history_stall.py - does a large history read stall other connections?
(issue 10: their echo p99 within 2x of the p99 without the read).

roomcast -w 1 -s scripts/chat.lua --history sqlite:FILE; room "big" holds
1000 messages of SIZE bytes. Client B makes N sequential round trips
(`presence`, answered by the worker without the store) and records their
latencies, first alone (after a discarded warm-up), then while client A
keeps asking for {"type":"history","room_id":"big","since":0,"limit":1000},
then alone again. Prints p50/p99 and the ratio against the lower of the
two quiet p99s, and the server threads' CPU time per read during the
reading phase (from /proc/PID/task/*/stat: the worker "rc-worker0" and the
store's reader "rc-hist-read"), a figure much less noisy than a p99 on a
shared machine. Loopback only, bounded (N round trips per phase).

The clients offer no permessage-deflate unless --deflate (then every
answer is compressed for its connection, on the worker, as a browser's
would be).

Client A reads over a plain socket by default (each answer read by its
frame length, not decoded: see raw_reader); --ws-reader (implied by
--deflate) makes it a websockets client as before.

usage: history_stall.py [--build DIR] [--size BYTES] [-n N] [--deflate] [--ws-reader]
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100.0))]


def raw_reader(url, seconds):
    """Client A over a plain socket (--raw-reader, the default): the same
    requests, each answer's frame read by its length into one reused buffer
    and not decoded, so that A's own CPU (websockets assembling and decoding
    2 MB text messages: milliseconds of Python per answer on the same two
    cores as B and the server) does not show in B's latency as a stall."""
    import socket
    import struct
    host, port = re.match(r"ws://([^:/]+):(\d+)/", url).groups()
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("handshake failed")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit("handshake refused: %r" % head[:80])
    pending = bytearray(head.split(b"\r\n\r\n", 1)[1])

    def read_exact(n):
        got = min(n, len(pending))
        view[:got] = pending[:got]
        del pending[:got]
        while got < n:
            k = s.recv_into(view[got:n], n - got)
            if k == 0:
                raise SystemExit("closed")
            got += k
        return view[:n]

    def send_text(text):
        data = text.encode()
        mask = os.urandom(4)
        hdr = bytes([0x81]) + (bytes([0x80 | len(data)]) if len(data) < 126 else
                               bytes([0x80 | 126]) + struct.pack("!H", len(data)))
        s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv_frame():
        b0, b1 = read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", read_exact(8))[0]
        if n > len(buf):
            raise SystemExit("frame of %d bytes" % n)
        read_exact(n)
        return b0, n

    send_text(json.dumps({"type": "join", "room_id": "big"}))
    recv_frame()
    reads = 0
    req = json.dumps({"type": "history", "room_id": "big", "since": 0, "limit": 1000})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        send_text(req)
        while True:
            b0, n = recv_frame()
            if b0 & 0x0F == 1 and n > 100000:  # the history answer (not a ping)
                break
        reads += 1
    s.close()
    print(reads)


async def reader(url, seconds):
    """Client A, in its own process: history reads back to back (the answer
    is not parsed: only B's latency is measured)."""
    reads = 0
    end = time.monotonic() + seconds
    async with websockets.connect(url, max_size=None, compression=COMPRESSION) as a:
        await a.send(json.dumps({"type": "join", "room_id": "big"}))
        await a.recv()
        while time.monotonic() < end:
            await a.send(json.dumps({"type": "history", "room_id": "big", "since": 0,
                                     "limit": 1000}))
            await a.recv()
            reads += 1
    print(reads)


SERVER_PID = None
COMPRESSION = None  # websockets' compression argument: None, or "deflate" (--deflate)
WS_READER = False  # client A on websockets (--ws-reader) instead of a plain socket


def thread_cpu():
    """{thread name: CPU seconds} of the server's threads."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    base = "/proc/%d/task" % SERVER_PID
    for tid in os.listdir(base):
        try:
            with open(os.path.join(base, tid, "stat")) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def phase(url, n, with_reader):
    proc = None
    cpu0 = thread_cpu()
    if with_reader:
        proc = subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__)] +
                                (["--deflate"] if COMPRESSION else []) +
                                (["--ws-reader"] if WS_READER else []) + ["--reader", url,
                                 "--seconds", str(n * 0.004 + 2)], stdout=subprocess.PIPE,
                                text=True)
        await asyncio.sleep(1.0)
    lat = []
    async with websockets.connect(url, compression=COMPRESSION) as b:
        await b.send(json.dumps({"type": "join", "room_id": "small"}))
        await b.recv()
        for _ in range(n):
            t0 = time.perf_counter()
            await b.send(json.dumps({"type": "presence", "room_id": "small"}))
            await b.recv()
            lat.append((time.perf_counter() - t0) * 1000.0)
            await asyncio.sleep(0.002)
    reads = 0
    if proc:
        reads = int(proc.communicate()[0].strip() or 0)
    # from before the reader started to after it ended: every read inside
    # (B's n presence round trips are in it too: a few us each)
    cpu1 = thread_cpu()
    cpu = {k: cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in cpu1}
    return lat, reads, cpu


async def main_async(a, url):
    async with websockets.connect(url, max_size=None, compression=COMPRESSION) as c:
        await c.send(json.dumps({"type": "join", "room_id": "big"}))
        await c.recv()
        body = "x" * a.size
        for i in range(1000):
            await c.send(json.dumps({"type": "broadcast", "room_id": "big", "content": body}))
        for i in range(1000):
            await c.recv()
    # Let the store's writer commit the 1000 messages, and warm up (JIT,
    # caches), so the quiet baseline is not inflated by start-up work.
    await asyncio.sleep(1.0)
    await phase(url, max(a.n // 5, 50), False)
    base, _, _ = await phase(url, a.n, False)
    loaded, reads, cpu = await phase(url, a.n, True)
    base2, _, _ = await phase(url, a.n, False)
    r = {"size": a.size, "deflate": COMPRESSION is not None, "reader": "ws" if WS_READER else "raw",
         "n": a.n, "reads_during": reads,
         "p50_ms_alone": round(pct(base, 50), 3), "p99_ms_alone": round(pct(base, 99), 3),
         "p99_ms_alone_after": round(pct(base2, 99), 3),
         "p50_ms_reading": round(pct(loaded, 50), 3), "p99_ms_reading": round(pct(loaded, 99), 3)}
    # against the lower of the two quiet baselines (before and after): the
    # stricter ratio
    r["p99_ratio"] = round(r["p99_ms_reading"] / min(r["p99_ms_alone"], r["p99_ms_alone_after"]), 2)
    if reads > 0:
        r["cpu_ms_per_read_server"] = round(sum(cpu.values()) * 1000.0 / reads, 3)
    for name in ("rc-worker0", "rc-hist-read"):
        if reads > 0 and name in cpu:
            r["cpu_ms_per_read_" + name.replace("-", "_")] = round(cpu[name] * 1000.0 / reads, 3)
    with open("/proc/%d/status" % SERVER_PID) as f:  # the server's peak resident memory
        hwm = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    if hwm:
        r["server_peak_rss_mb"] = round(int(hwm.group(1)) / 1024.0, 1)
    print(json.dumps(r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--reader")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--ws-reader", action="store_true")
    a = ap.parse_args()
    global COMPRESSION, WS_READER
    COMPRESSION = "deflate" if a.deflate else None
    WS_READER = a.ws_reader or a.deflate
    if a.reader:
        if WS_READER:
            asyncio.run(reader(a.reader, a.seconds))
        else:
            raw_reader(a.reader, a.seconds)
        return
    tmp = tempfile.mkdtemp(prefix="rc-stall-")
    conf = os.path.join(tmp, "c.lua")
    with open(conf, "w") as f:
        f.write("drain_time = 0\n")
    srv = subprocess.Popen(["taskset", "-c", "0", os.path.join(a.build, "roomcast"), "-b",
                            "127.0.0.1", "-p", "0", "-w", "1", "--admin", "off", "-c", conf,
                            "-s", os.path.join(ROOT, "scripts", "chat.lua"), "--history",
                            "sqlite:" + os.path.join(tmp, "h.db")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    global SERVER_PID
    SERVER_PID = srv.pid
    try:
        port = None
        for line in srv.stdout:
            m = re.search(r"listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        asyncio.run(main_async(a, "ws://127.0.0.1:%d/ws" % port))
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
