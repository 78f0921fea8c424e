"""rctest - helpers for roomcast's integration tests (run with /usr/bin/python3).

Four parts:

  Server   starts the real binary on 127.0.0.1 with `-p 0`, reads the port from
           the `listening on ws://ADDR:PORT/` log line, and on stop() sends
           SIGTERM (SIGKILL after a bound) and reports a crash, a non-zero exit
           or sanitizer output as a failure.
  Conn     a raw-socket WebSocket client that can send anything, including
           frames no real client would: any opcode, RSV bits, FIN, mask or no
           mask, a lying or non-minimal length, chopped into pieces. It reads
           the server's frames strictly (a server frame must be unmasked, with
           RSV 0 and a minimal length) and tells a close frame from a TCP close.
  ws_*     python3-websockets (asyncio) clients of a Server: ws_url(), ws_join()
           (join a room through scripts/chat.lua's protocol), ws_next(), run().
  main()   a tiny runner: every `test_*` function of the calling module (or
           every Case given) runs TWICE against the same server, to catch
           state left behind (Test::Nginx's repeat_each(2)). It prints one
           `ok` / `FAIL` line per test and ends with `N passed, M failed`; the
           exit status is 1 when anything failed.

Environment: ROOMCAST_BIN (default build/roomcast in this checkout), RC_SANITIZE
(non-empty under ASan/UBSan builds: every timeout is stretched), RC_WORKERS
(passed as -w when set), RC_TEST_ONLY (run only tests whose name contains it).
"""

import asyncio
import atexit
import base64
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BIN = os.environ.get("ROOMCAST_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "roomcast")
SANITIZED = bool(os.environ.get("RC_SANITIZE"))
SLOW = 4.0 if SANITIZED else 1.0

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
OP_NAMES = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                     "UndefinedBehaviorSanitizer", "runtime error:", "MemorySanitizer")


def tmo(seconds):
    """A timeout, stretched under sanitizers."""
    return seconds * SLOW


class Failure(AssertionError):
    pass


class Closed(Exception):
    """The TCP connection was closed (EOF or reset) by the server."""


class Timeout(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(got, want, what):
    if got != want:
        raise Failure("%s: got %s, want %s" % (what, short(got), short(want)))


class Tally:
    """Checks that go on past a failure, for a script that is not run by
    main() (tests/bench's *_test.py): check() prints FAIL and keeps the
    failure; done() exits 1 after any, else prints ok_line."""

    def __init__(self):
        self.failures = []

    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
            print("FAIL " + what)

    def done(self, ok_line):
        if self.failures:
            print(f"{len(self.failures)} check(s) failed")
            sys.exit(1)
        print(ok_line)


def short(v, limit=80):
    r = repr(v)
    if isinstance(v, (bytes, bytearray)) and len(v) > 40:
        r = "<%d bytes %r...>" % (len(v), bytes(v[:24]))
    return r if len(r) <= limit else r[:limit] + "..."


def scratch_dir(prefix):
    """A new temporary directory for a test's files, removed with all it holds
    when the test process exits."""
    d = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, d, True)
    return d


def write_in(folder, name, text):
    """Writes text to the file name in folder; returns the file's path."""
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# --- server process -----------------------------------------------------------

LISTEN_RE = re.compile(r"listening on ws://(\[[^\]]+\]|[^\s:/]+):(\d+)/")


class Server:
    """One roomcast process. args are extra CLI flags (e.g. "--echo")."""

    def __init__(self, args=()):
        self.args = list(args)
        self.proc = None
        self.host = None
        self.port = None
        self.lines = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.readers = []

    def _reader(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
            if not self.ready.is_set():
                m = LISTEN_RE.search(line)
                if m:
                    self.host = m.group(1).strip("[]")
                    self.port = int(m.group(2))
                    self.ready.set()
        stream.close()

    def start(self, timeout=10.0):
        if not os.access(BIN, os.X_OK):
            raise Failure("server binary %s not found (set ROOMCAST_BIN)" % BIN)
        cmd = [BIN, "-b", "127.0.0.1", "-p", "0"]
        if os.environ.get("RC_WORKERS"):
            cmd += ["-w", os.environ["RC_WORKERS"]]
        cmd += self.args
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        for stream in (self.proc.stdout, self.proc.stderr):
            th = threading.Thread(target=self._reader, args=(stream,), daemon=True)
            th.start()
            self.readers.append(th)
        deadline = time.monotonic() + tmo(timeout)
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None:
                self._join()
                raise Failure("server exited with %s before listening: %s\n%s" %
                              (self.proc.returncode, " ".join(cmd), self.log_tail()))
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self._join()
                raise Failure("no 'listening on ws://' line within %.0fs: %s\n%s" %
                              (tmo(timeout), " ".join(cmd), self.log_tail()))
        return self

    def _join(self):
        for th in self.readers:
            th.join(5)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with self.lock:
            return list(self.lines)

    def log_tail(self, n=30):
        return "\n".join("    | " + l for l in self.log()[-n:])

    def stop(self, timeout=10.0):
        """Stops the server; returns a list of problems (empty when all is well)."""
        problems = []
        if self.proc is None:
            return problems
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(tmo(timeout))
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait()
                problems.append("did not exit within %.0fs of SIGTERM (killed)" % tmo(timeout))
        self._join()
        rc = self.proc.returncode
        if rc < 0 and not killed:
            problems.append("died from signal %d (%s)" % (-rc, signal.Signals(-rc).name))
        elif rc > 0:
            problems.append("exit status %d after SIGTERM" % rc)
        for line in self.log():
            if any(m in line for m in SANITIZER_MARKERS):
                problems.append("sanitizer report: " + line.strip())
                break
        return problems

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """`with Server(args).start() as s:` stops s at the end of the block,
        and a problem at the stop (see stop()) fails the test."""
        problems = self.stop()
        check(not problems, "server stop: %s\n%s" % ("; ".join(problems), self.log_tail()))
        return False

    def connect(self, path="/", headers=None, **kw):
        """A Conn that has completed a valid opening handshake."""
        c = Conn(self.host, self.port)
        try:
            c.upgrade(path, headers=headers, **kw)
        except BaseException:
            c.close()
            raise
        return c

    def raw(self, rcvbuf=None):
        """A Conn with only the TCP connection made (rcvbuf: SO_RCVBUF set before connect)."""
        return Conn(self.host, self.port, rcvbuf=rcvbuf)


# --- python3-websockets clients ---------------------------------------------------

def need_websockets():
    """The websockets module; without it, prints a SKIP and a `0 passed` summary and
    exits 0 (python3-websockets is a Debian package the system python3 owns)."""
    try:
        import websockets
    except ImportError:
        print("SKIP: python3-websockets is not installed for %s" % sys.executable)
        print("0 passed, 0 failed")
        sys.exit(0)
    return websockets


def ws_url(srv, path="/ws"):
    """The ws:// URL of srv's main listener at path."""
    return "ws://%s:%d%s" % (srv.host, srv.port, path)


def run(coro, limit=60.0):
    """Runs coroutine coro to its end in a fresh event loop, cancelled after
    tmo(limit) seconds (asyncio.TimeoutError)."""
    return asyncio.run(asyncio.wait_for(coro, tmo(limit)))


async def ws_join(srv, room, user, **connect):
    """A python3-websockets client on srv's /ws that has joined room as user
    (scripts/chat.lua's protocol); the `joined` reply, checked for its type and
    room_id, is consumed. connect: extra websockets.connect() arguments (no
    size limit and no pings unless given)."""
    websockets = need_websockets()
    kw = {"max_size": None, "ping_interval": None}
    kw.update(connect)
    ws = await websockets.connect(ws_url(srv), **kw)
    await ws.send(json.dumps({"type": "join", "room_id": room, "user_id": user}))
    reply = json.loads(await ws.recv())
    # joined also carries the room's seq and epoch (issue 10)
    eq({k: reply.get(k) for k in ("type", "room_id")}, {"type": "joined", "room_id": room},
       "join reply for %s" % user)
    return ws


async def ws_next(ws, kind, timeout):
    """The next JSON message of type kind on ws (the others before it are
    skipped); asyncio.TimeoutError when a read waits longer than timeout."""
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if m.get("type") == kind:
            return m


# --- frames -------------------------------------------------------------------

def mask_bytes(data, key):
    """XOR data with the 4-byte key (RFC 6455 §5.3); fast for large data."""
    n = len(data)
    if n == 0:
        return b""
    k = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None, len_form=None):
    """Encodes one frame as a client would send it.

    rsv: 3-bit value (4 = RSV1, 2 = RSV2, 1 = RSV3). mask: False sends an
    unmasked frame. length: announce this length instead of len(payload).
    len_form: force the length encoding: 7, 16 or 64 bits (non-minimal
    encodings are protocol errors, §5.2)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if len_form is None:
        len_form = 7 if n < 126 else (16 if n < 65536 else 64)
    if len_form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif len_form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + bytes(payload)
    if key is None:
        key = os.urandom(4)
    return head + bytes(key) + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        return "<%s fin=%d rsv=%d %s>" % (OP_NAMES.get(self.opcode, self.opcode), self.fin,
                                          self.rsv, short(self.payload, 60))


class Message:
    """A whole data message (fragments joined)."""

    def __init__(self, opcode, payload, nframes):
        self.opcode, self.payload, self.nframes = opcode, payload, nframes
        self.fin, self.rsv = 1, 0

    def __repr__(self):
        return "<message %s %s>" % (OP_NAMES.get(self.opcode), short(self.payload, 60))


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status, self.reason, self.headers = status, reason, headers
        self.body, self.raw_head = body, raw_head

    def header(self, name):
        """The value of header `name` (several joined by ', '), or None."""
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def count(self, name):
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())

    def __repr__(self):
        return "<HTTP %d %s %s>" % (self.status, self.reason, short(self.body, 60))


def accept_for(key):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(path="/", key=None, host="127.0.0.1", headers=None, omit=(),
                    version="13", method="GET", proto="HTTP/1.1"):
    """Builds an upgrade request; `headers` are extra (name, value) pairs,
    `omit` names standard headers to leave out."""
    std = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key", key or new_key()), ("Sec-WebSocket-Version", version)]
    lines = ["%s %s %s" % (method, path, proto)]
    for k, v in std:
        if k not in omit and v is not None:
            lines.append("%s: %s" % (k, v))
    for k, v in headers or ():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- raw client -----------------------------------------------------------------

class Conn:
    def __init__(self, host, port, timeout=5.0, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=tmo(timeout))
        else:
            # A receive buffer must be set before connect(): shrinking it on an
            # established connection leaves the peer with data it already sent
            # past the new window, recovered only by slow retransmits.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(tmo(timeout))
            self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.pending = []  # control frames seen while joining a message

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending
    def send(self, data):
        """Sends all of data; a reset/EPIPE from the server raises Closed."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("send failed: %s" % e)

    def send_chopped(self, data, chunk=1, delay=0.0):
        """Sends data in chunk-byte writes (TCP_NODELAY is on), with an optional
        pause between writes so they leave as separate segments."""
        for i in range(0, len(data), chunk):
            self.send(data[i:i + chunk])
            if delay:
                time.sleep(delay)

    def send_frame(self, opcode, payload=b"", chop=None, delay=0.0, **kw):
        data = frame(opcode, payload, **kw)
        if chop:
            self.send_chopped(data, chop, delay)
        else:
            self.send(data)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def try_send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    # -- receiving
    def _fill(self, deadline):
        """Reads more bytes into buf. Raises Closed on EOF/reset, Timeout."""
        if self.eof:
            raise Closed("connection closed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise Timeout("timed out after waiting")
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise Timeout("timed out in recv")
        if not data:
            self.eof = True
            raise Closed("connection closed by server")
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_response(self, timeout=5.0):
        """Reads an HTTP response head (and body for non-101 responses)."""
        deadline = time.monotonic() + tmo(timeout)
        while b"\r\n\r\n" not in self.buf:
            check(len(self.buf) < 65536, "response head too long")
            try:
                self._fill(deadline)
            except Closed:
                raise Failure("connection closed before a complete response; got %s" %
                              short(bytes(self.buf)))
            except Timeout:
                raise Failure("no complete response within %.1fs; got %s" %
                              (tmo(timeout), short(bytes(self.buf))))
        i = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[:i + 4]
        lines = head.split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ?(.*)$", lines[0])
        check(m, "bad status line %r" % lines[0])
        headers = []
        for l in lines[1:]:
            check(":" in l, "bad response header line %r" % l)
            k, v = l.split(":", 1)
            headers.append((k, v.strip()))
        status = int(m.group(1))
        resp = Response(status, m.group(2), headers, b"", head)
        if status != 101:
            cl = resp.header("Content-Length")
            if cl is not None:
                resp.body = self._take(int(cl), deadline)
            else:
                try:
                    while True:
                        self._fill(deadline)
                except (Closed, Timeout):
                    pass
                resp.body = bytes(self.buf)
                self.buf.clear()
        return resp

    def request(self, raw, timeout=5.0):
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        self.send(raw)
        return self.read_response(timeout)

    def upgrade(self, path="/", key=None, headers=None, extra=b"", **kw):
        """Sends a valid upgrade request (plus `extra` bytes in the same write)
        and checks the 101 response: Upgrade, Connection, exact accept key."""
        key = key or new_key()
        req = upgrade_request(path, key=key, headers=headers, **kw)
        self.send(req + extra)
        r = self.read_response()
        check(r.status == 101, "upgrade of %s refused: %r %s" % (path, r, r.raw_head))
        check(r.header("Upgrade") and r.header("Upgrade").lower() == "websocket",
              "101 without 'Upgrade: websocket': %r" % r.raw_head)
        check(r.header("Connection") and "upgrade" in
              [t.strip().lower() for t in r.header("Connection").split(",")],
              "101 without 'Connection: Upgrade': %r" % r.raw_head)
        eq(r.header("Sec-WebSocket-Accept"), accept_for(key), "Sec-WebSocket-Accept")
        self.response = r
        return r

    def recv_frame(self, timeout=5.0):
        """Reads one server frame, checking the rules every server frame
        obeys (unmasked §5.1, minimal length §5.2, top length bit 0)."""
        return self._frame(time.monotonic() + tmo(timeout))

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def _frame(self, deadline):
        # Parse from the buffer without consuming it until the whole frame is
        # there, so a timeout never loses half a frame.
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, op = b0 >> 7, (b0 >> 4) & 7, b0 & 0xF
        masked, n, hl = b1 >> 7, b1 & 0x7F, 2
        check(not masked, "server sent a masked frame (RFC 6455 §5.1)")
        if n == 126:
            self._need(4, deadline)
            (n,), hl = struct.unpack_from("!H", self.buf, 2), 4
            check(n >= 126, "server used a non-minimal 16-bit length %d" % n)
        elif n == 127:
            self._need(10, deadline)
            (n,), hl = struct.unpack_from("!Q", self.buf, 2), 10
            check(n >= 65536 and n < (1 << 63), "server used a bad 64-bit length %d" % n)
        if op >= 8:
            check(n <= 125 and fin, "server sent a bad control frame (len %d fin %d)" % (n, fin))
        self._need(hl + n, deadline)
        payload = bytes(self.buf[hl:hl + n])
        del self.buf[:hl + n]
        return Frame(fin, rsv, op, payload)

    def recv(self, timeout=5.0):
        """The next event: a control Frame, or a whole data Message."""
        return self._event(time.monotonic() + tmo(timeout))

    def _event(self, deadline):
        if self.pending:
            return self.pending.pop(0)
        f = self._frame(deadline)
        check(f.rsv == 0, "server frame with RSV bits %d: %r" % (f.rsv, f))
        check(f.opcode in (OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG),
              "server sent %r outside a message" % f)
        if f.opcode >= 8:
            return f
        parts, nframes, op = [f.payload], 1, f.opcode
        while not f.fin:
            f = self._frame(deadline)
            check(f.rsv == 0, "server frame with RSV bits %d: %r" % (f.rsv, f))
            if f.opcode >= 8:
                self.pending.append(f)
                continue
            check(f.opcode == OP_CONT, "server sent %r inside a fragmented message" % f)
            parts.append(f.payload)
            nframes += 1
        return Message(op, b"".join(parts), nframes)

    def expect_message(self, opcode, payload, timeout=5.0):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        try:
            ev = self.recv(timeout)
        except Closed:
            raise Failure("expected echo %s %s, connection closed" %
                          (OP_NAMES[opcode], short(payload)))
        except Timeout:
            raise Failure("expected echo %s %s, nothing within %.1fs" %
                          (OP_NAMES[opcode], short(payload), tmo(timeout)))
        check(isinstance(ev, Message), "expected echo %s %s, got %r" %
              (OP_NAMES[opcode], short(payload), ev))
        eq(ev.opcode, opcode, "echoed opcode")
        if ev.payload != payload:
            raise Failure("echoed payload differs: got %s, want %s" %
                          (short(ev.payload), short(payload)))
        return ev

    def expect_pong(self, payload=b"", timeout=5.0):
        try:
            ev = self.recv(timeout)
        except (Closed, Timeout) as e:
            raise Failure("expected PONG %s: %s" % (short(payload), e))
        check(isinstance(ev, Frame) and ev.opcode == OP_PONG,
              "expected PONG %s, got %r" % (short(payload), ev))
        eq(ev.payload, bytes(payload), "pong payload")
        return ev

    def expect_close(self, codes=None, timeout=5.0, ignore_pings=False):
        """The next event must be a close frame (after pings, when
        ignore_pings); codes: int, collection, or None (any). Returns
        (code or None, reason bytes)."""
        try:
            ev = self.recv(timeout)
            while ignore_pings and isinstance(ev, Frame) and ev.opcode == OP_PING:
                ev = self.recv(timeout)
        except Closed:
            raise Failure("expected close frame %s, TCP closed without one" % (codes,))
        except Timeout:
            raise Failure("expected close frame %s, nothing within %.1fs" % (codes, tmo(timeout)))
        check(isinstance(ev, Frame) and ev.opcode == OP_CLOSE,
              "expected close %s, got %r" % (codes, ev))
        p = ev.payload
        check(len(p) != 1, "server sent a 1-byte close payload")
        code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
        reason = p[2:]
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            raise Failure("server close reason is not UTF-8: %r" % reason)
        if codes is not None:
            want = (codes,) if isinstance(codes, int) or codes is None else tuple(codes)
            check(code in want, "close code: got %s (reason %r), want %s" %
                  (code, reason, " or ".join(map(str, want))))
        return code, reason

    def wait_closed(self, timeout=3.0, allow_data=False):
        """Waits for the server to close TCP; fails if it does not within the
        bound, or if more bytes arrive (unless allow_data)."""
        deadline = time.monotonic() + tmo(timeout)
        start = len(self.buf)
        if self.buf and not allow_data:
            raise Failure("bytes after the close frame: %s" % short(bytes(self.buf)))
        while True:
            try:
                self._fill(deadline)
            except Closed:
                break
            except Timeout:
                raise Failure("server did not close TCP within %.1fs" % tmo(timeout))
            if not allow_data:
                raise Failure("bytes after the close frame: %s" % short(bytes(self.buf[start:])))
        return True

    def expect_fail(self, code, timeout=5.0, close_wait=3.0):
        """The server fails the connection (§7.1.7): a close frame with
        `code`, then the TCP close (we echo the close as a client would)."""
        got = self.expect_close(code, timeout)
        self.try_send(frame(OP_CLOSE, close_payload(got[0])))
        self.wait_closed(close_wait)
        return got

    def expect_nothing(self, seconds=0.2):
        """No frame may arrive within `seconds`, and the connection stays open."""
        try:
            ev = self._event(time.monotonic() + seconds)
        except Timeout:
            return
        except Closed:
            raise Failure("connection closed while expecting nothing")
        raise Failure("expected nothing, got %r" % ev)

    def finish(self, code=1000, reason=b"", close_wait=3.0, ignore_pings=False):
        """Clean client-initiated close (§5.5.1): the server echoes the code
        and then closes TCP first (§7.1.1). ignore_pings: a heartbeat ping
        may still come before the close (the server sent it first)."""
        self.send_close(code, reason)
        got = self.expect_close(code, ignore_pings=ignore_pings)
        self.wait_closed(close_wait)
        return got


# --- runner -----------------------------------------------------------------------

class Case:
    def __init__(self, name, fn, server_args=None, repeat=2):
        self.name, self.fn, self.server_args, self.repeat = name, fn, server_args, repeat


def server(*args):
    """Decorator: run this test against a server started with these flags."""
    def deco(fn):
        fn.rc_server = tuple(args)
        return fn
    return deco


def _where(tb):
    frames = traceback.extract_tb(tb)
    mine = [f for f in frames if not f.filename.endswith("rctest.py")] or frames
    f = mine[-1]
    return "%s:%d" % (os.path.basename(f.filename), f.lineno)


class _Watchdog(Exception):
    pass


def _alarm(signum, frm):
    raise _Watchdog("test took too long (watchdog)")


def main(ns=None, default_args=("--echo",), cases=None, per_test_limit=60.0):
    """Runs the test_* functions of module namespace `ns` (in definition order)
    plus `cases`, each twice; prints results; exits 0 or 1."""
    all_cases = []
    for name, fn in (ns or {}).items():
        if name.startswith("test_") and callable(fn):
            all_cases.append(Case(name, fn, getattr(fn, "rc_server", None)))
    all_cases += list(cases or [])
    only = os.environ.get("RC_TEST_ONLY")
    if only:
        all_cases = [c for c in all_cases if only in c.name]
    signal.signal(signal.SIGALRM, _alarm)
    servers = {}
    broken = {}  # args -> why the server would not start
    passed = failed = 0
    failed_names = []
    t_start = time.monotonic()
    for case in all_cases:
        args = tuple(case.server_args if case.server_args is not None else default_args)
        srv = servers.get(args)
        if srv is None or not srv.alive():
            if args in broken:
                print("FAIL %s: server would not start (see above)" % case.name, flush=True)
                failed += 1
                failed_names.append(case.name)
                continue
            try:
                srv = Server(args).start()
            except Failure as e:
                broken[args] = str(e)
                print("FAIL %s: %s" % (case.name, e), flush=True)
                failed += 1
                failed_names.append(case.name)
                continue
            servers[args] = srv
        error = None
        t0 = time.monotonic()
        for run in range(1, case.repeat + 1):
            signal.setitimer(signal.ITIMER_REAL, tmo(per_test_limit))
            try:
                case.fn(srv)
            except Exception as e:
                what = "%s: %s" % (type(e).__name__, e) if not isinstance(e, Failure) else str(e)
                error = "run %d: %s [%s]" % (run, what, _where(e.__traceback__))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if not srv.alive():
                error = (error or "run %d" % run) + " -- server died (exit %s)\n%s" % (
                    srv.proc.returncode, srv.log_tail())
                servers.pop(args, None)
            if error:
                break
        dt = time.monotonic() - t0
        if error:
            failed += 1
            failed_names.append(case.name)
            print("FAIL %s %s" % (case.name, error), flush=True)
        else:
            passed += 1
            print("ok   %s (%d runs, %.2fs)" % (case.name, case.repeat, dt), flush=True)
    for args, srv in servers.items():
        problems = srv.stop()
        if problems:
            failed += 1
            failed_names.append("server-shutdown")
            print("FAIL server shutdown [%s]: %s\n%s" % (" ".join(args), "; ".join(problems),
                                                        srv.log_tail()), flush=True)
        else:
            passed += 1
            print("ok   server shutdown [%s]" % " ".join(args), flush=True)
    if failed_names:
        print("failed: " + " ".join(failed_names))
    print("(%.1fs)" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
