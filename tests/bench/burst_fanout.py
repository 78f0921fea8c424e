"""burst_fanout.py - bursts of publishes into one room (issue 14 goal 4).

Needs a roomcast running scripts/fanout.lua (every connection joins one room
and every message is published to it). Opens MEMBERS connections; the first
one sends BURSTS bursts of K binary messages, each burst in ONE send(), GAP
seconds apart, while a thread drains every member. Count the server's writev
calls meanwhile (perf stat -e syscalls:sys_enter_writev -p PID): one worker
writes each member once per burst; so should two, when the hand-over of a
burst between them is one batch.

  /usr/bin/python3 tests/bench/burst_fanout.py PORT [MEMBERS BURSTS K GAP]
"""
import base64
import os
import selectors
import socket
import sys
import threading
import time


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit("upgrade refused: %r" % head[:40])
    extra = head.split(b"\r\n\r\n", 1)[1]
    s.setblocking(False)
    return s, len(extra)


def frame(payload):
    mask = os.urandom(4)
    return bytes([0x82, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


def main():
    port = int(sys.argv[1])
    members, bursts, k, gap = (int(sys.argv[2]) if len(sys.argv) > 2 else 200,
                               int(sys.argv[3]) if len(sys.argv) > 3 else 20,
                               int(sys.argv[4]) if len(sys.argv) > 4 else 20,
                               float(sys.argv[5]) if len(sys.argv) > 5 else 0.1)
    conns = [connect(port) for _ in range(members)]
    time.sleep(0.5)
    sel = selectors.DefaultSelector()
    got = [sum(n for _, n in conns)]
    for s, _ in conns:
        sel.register(s, selectors.EVENT_READ)
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                try:
                    got[0] += len(key.fileobj.recv(1 << 16))
                except BlockingIOError:
                    pass

    th = threading.Thread(target=drain)
    th.start()
    pub = conns[0][0]
    burst = b"".join(frame(b"%08d" % i + b"x" * 24) for i in range(k))
    for _ in range(bursts):
        pub.setblocking(True)
        pub.sendall(burst)
        pub.setblocking(False)
        time.sleep(gap)
    time.sleep(0.5)
    stop.set()
    th.join()
    want = members * bursts * k * (2 + 32)
    print("members %d, bursts %d of %d: %d of %d bytes received" %
          (members, bursts, k, got[0], want))
    sys.exit(0 if got[0] == want else 1)


if __name__ == "__main__":
    main()
