#!/usr/bin/python3
"""71_daemon - process management: -d with a locked pidfile and a log file;
SIGTERM drain (queued data delivered, then close 1001; /health 503 while
draining; bounded exit); SIGUSR1 log reopen; sd_notify READY/RELOADING/
STOPPING over $NOTIFY_SOCKET; a burst of unread echoes all read."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import BIN, OP_BINARY, Server, check, eq, tmo  # noqa: E402
from rcadmin import TMP, admin_port, conf, get, wait_metric  # noqa: E402

DRAIN = conf("drain.lua", "return { echo = true, drain_time = 1, close_timeout = 3 }\n")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + tmo(timeout)
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise rctest.Failure("timed out waiting for " + what)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_daemon_pidfile(srv):
    pidfile, logfile = os.path.join(TMP, "rc.pid"), os.path.join(TMP, "rc.log")
    for p in (pidfile, logfile):
        if os.path.exists(p):
            os.unlink(p)
    cmd = [BIN, "-d", "--pidfile", pidfile, "--log-file", logfile, "-b", "127.0.0.1", "-p", "0",
           "--echo", "--admin", "off", "-w", "1"]
    eq(subprocess.run(cmd, timeout=tmo(10)).returncode, 0, "the foreground parent exits 0")
    pid = int(wait_for(lambda: read(pidfile).strip(), 5, "the pidfile"))
    wait_for(lambda: "listening on ws://" in read(logfile), 5, "the listening line")
    check(alive(pid), "daemon running")
    # A second instance finds the pidfile locked and refuses to start.
    p = subprocess.run(cmd[:1] + cmd[2:], capture_output=True, text=True, timeout=tmo(10))
    eq(p.returncode, 1, "second instance exit status")
    check("locked" in read(logfile) + p.stderr, "second instance explains the lock")
    eq(int(read(pidfile).strip()), pid, "pidfile untouched by the loser")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), 10, "the daemon to exit")
    check(not os.path.exists(pidfile), "pidfile removed at exit")
    check("stopped" in read(logfile), "log says stopped")


def test_drain_delivers_then_1001(srv):
    with Server(["-c", DRAIN, "--admin", "127.0.0.1:0"]).start() as s:
        port = admin_port(s)
        msgs = [os.urandom(900 << 10) for _ in range(6)]
        a = s.connect()
        for m in msgs:
            a.send_frame(OP_BINARY, m)  # the echoes pile up: we are not reading
        b = s.connect()  # will ignore the server's close frame
        # Every message must have been read before SIGTERM: once the server
        # sends its close it reads no more data (RFC 6455 §5.5.1), and under
        # TSan on a loaded machine 0.3 s was not always enough to read 5 MiB.
        wait_metric(port, "roomcast_msgs_in_total", len(msgs), timeout=10)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: get(port, "/health")[0] == 503, 3, "/health 503 while draining")
        status, _, body = get(port, "/health")
        check("draining" in body, "/health body %r" % body)
        for m in msgs:
            a.expect_message(OP_BINARY, m, timeout=10)  # what was queued arrives
        a.expect_fail(1001)
        b.expect_close(1001, timeout=5)  # and b never answers
        eq(s.proc.wait(tmo(15)), 0, "exit status after the drain")
        took = time.monotonic() - t0
        check(took < tmo(1 + 3 + 2), "drain bounded by drain_time + close_timeout (%.1fs)" % took)
        check(any("draining" in l for l in s.log()), "log mentions the drain")
        a.close()
        b.close()


def test_unread_echoes_in_one_burst_all_read(srv):
    # The drain test's client again, its six 900 KiB messages arriving in one
    # burst (the server stopped while they are sent): the server reads faster
    # than its 64 KiB flush slices write, so its reads pause over the soft
    # limit while the socket still takes every byte. They must resume once
    # the slices take the queue back under the limit: held to half of it,
    # the kernel's buffers filled first (the client reads nothing, no
    # EPOLLOUT comes) and the server read 5 of the 6 for good.
    with Server(["-c", DRAIN, "--admin", "127.0.0.1:0"]).start() as s:
        port = admin_port(s)
        msgs = [os.urandom(900 << 10) for _ in range(6)]
        a = s.connect()
        s.proc.send_signal(signal.SIGSTOP)
        sent = []

        def send_all():
            for m in msgs:
                a.send_frame(OP_BINARY, m)
                sent.append(m)

        t = threading.Thread(target=send_all)
        try:
            t.start()
            time.sleep(0.3)  # the client's sends fill the kernel's buffers
        finally:
            s.proc.send_signal(signal.SIGCONT)
        t.join(tmo(10))
        eq(len(sent), len(msgs), "messages sent")
        wait_metric(port, "roomcast_msgs_in_total", len(msgs), timeout=10)
        for m in msgs:
            a.expect_message(OP_BINARY, m, timeout=10)
        a.finish()
        a.close()


def test_drain_is_paced(srv):
    with Server(["-c", DRAIN, "--admin", "off"]).start() as s:
        conns = [s.connect() for _ in range(40)]
        s.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        times = []
        for c in conns:
            c.expect_close(1001, timeout=5)
            times.append(time.monotonic() - t0)
            c.try_send(rctest.frame(rctest.OP_CLOSE, rctest.close_payload(1001)))
        spread = max(times) - min(times)
        check(spread > 0.4, "closes spread over drain_time (spread %.2fs)" % spread)
        for c in conns:
            c.close()
        eq(s.proc.wait(tmo(10)), 0, "exit status")


def test_sigusr1_reopens_log(srv):
    logfile = os.path.join(TMP, "reopen.log")
    for p in (logfile, logfile + ".1"):
        if os.path.exists(p):
            os.unlink(p)
    s = Server(["--echo", "--admin", "off", "--log-file", logfile])
    # The listening line goes to the file: start by hand and watch the file.
    s.proc = subprocess.Popen([BIN, "-b", "127.0.0.1", "-p", "0", "--echo", "--admin", "off",
                               "--log-file", logfile])
    try:
        wait_for(lambda: "listening on ws://" in read(logfile), 5, "the listening line")
        os.rename(logfile, logfile + ".1")
        s.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGHUP)  # logs a line
        wait_for(lambda: "SIGHUP" in read(logfile), 5, "a line in the reopened file")
        check("SIGHUP" not in read(logfile + ".1"), "old file no longer written")
    finally:
        s.proc.send_signal(signal.SIGTERM)
        eq(s.proc.wait(tmo(10)), 0, "exit status")


def test_sd_notify(srv):
    path = os.path.join(TMP, "notify.sock")
    if os.path.exists(path):
        os.unlink(path)
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(tmo(5))
    os.environ["NOTIFY_SOCKET"] = path
    try:
        s = Server(["--echo", "--admin", "off"]).start()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    with ns, s:
        check(b"READY=1" in ns.recv(4096), "READY=1 at startup")
        s.proc.send_signal(signal.SIGHUP)
        m = ns.recv(4096)
        check(b"RELOADING=1" in m and b"MONOTONIC_USEC=" in m, "RELOADING=1: %r" % m)
        check(b"READY=1" in ns.recv(4096), "READY=1 after the reload")
        s.proc.send_signal(signal.SIGTERM)
        check(b"STOPPING=1" in ns.recv(4096), "STOPPING=1 on SIGTERM")


def test_port_in_use_is_an_error(srv):
    # SO_REUSEPORT would let a second server share the port and quietly take
    # part of the connections: it must refuse to start instead.
    second = subprocess.run([BIN, "-b", "127.0.0.1", "-p", str(srv.port), "--echo",
                             "--admin", "off", "-w", "2"],
                            capture_output=True, text=True, timeout=tmo(10))
    check(second.returncode != 0, "second server on a used port exits non-zero (%d)"
          % second.returncode)
    check("cannot listen on 127.0.0.1:%d" % srv.port in second.stderr and
          "in use" in second.stderr, "it says why: %r" % second.stderr[-300:])
    # the first server still has every connection
    for _ in range(20):
        with srv.connect() as c:
            c.send_frame(rctest.OP_TEXT, "mine")
            c.expect_message(rctest.OP_TEXT, "mine")
            c.finish()


if __name__ == "__main__":
    rctest.main(globals(), default_args=("--echo", "--admin", "off"))
