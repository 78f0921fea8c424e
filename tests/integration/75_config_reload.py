#!/usr/bin/python3
"""75_config_reload - SIGHUP re-reads the config file's reloadable options
(a new rc_live snapshot) and reloads the script while clients connect and the
admin endpoint is polled (a TSan run watches the threads): max_connections and admin_token take their new values, message_rate turns
on and off for open connections, a broken file
is refused and the running values stay, a changed restart-only option is
reported as ignored, and command-line flags still win over the file."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import Failure, Server, check, eq, tmo  # noqa: E402
from rcadmin import admin_port, conf, get, metrics, stats, total  # noqa: E402


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


SRC = os.environ.get("RC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# A script, so that each SIGHUP also reloads the handlers on every worker
# (the generation each worker writes and /stats reads on the main thread).
ECHO = os.path.join(SRC, "scripts", "echo.lua")


def limits(n, token, extra=""):
    return ("return {\n  script = %r,\n  max_connections = %d,\n  admin_token = %r,\n"
            "  message_rate = 1000,\n%s}\n" % (ECHO, n, token, extra))


def bearer(token):
    return {"Authorization": "Bearer " + token}


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + tmo(timeout)
    while not cond():
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for " + what)
        time.sleep(0.02)


def status_503(srv):
    with srv.raw() as c:
        c.send(rctest.upgrade_request())
        return c.read_response().status == 503


def connect_retry(srv):
    deadline = time.monotonic() + tmo(3)
    while True:
        try:
            return srv.connect()
        except Failure:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_sighup_swaps_the_live_options(_srv):
    path = conf("reload.lua", limits(2, "one"))
    # --drain-time on the command line must win over the file at every reload.
    s = Server(["-c", path, "--admin", "127.0.0.1:0", "--drain-time", "1"]).start()
    stop = threading.Event()
    errors = []

    def poll_admin(port):
        # Reads the snapshot on the admin (main) thread while workers read it
        # for every message and upgrade: what TSan watches.
        while not stop.is_set():
            try:
                get(port, "/metrics", bearer("one"))
                get(port, "/stats", bearer("two"))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return

    def traffic():
        while not stop.is_set():
            try:
                with s.connect() as c:
                    c.send_frame(rctest.OP_TEXT, "x")
                    c.expect_message(rctest.OP_TEXT, "x")
                    c.finish()
            except Failure:
                pass  # refused with 503 while the limit is low: expected

    try:
        port = admin_port(s)
        eq(get(port, "/stats", bearer("one"))[0], 200, "token one")
        eq(get(port, "/stats", bearer("two"))[0], 401, "token two not yet")
        held = [s.connect(), s.connect()]
        wait_for(lambda: status_503(s), "503 over max_connections = 2")
        threads = [threading.Thread(target=poll_admin, args=(port,), daemon=True),
                   threading.Thread(target=traffic, daemon=True)]
        for t in threads:
            t.start()

        # 1. new limits and token
        for _ in range(3):  # several swaps while the pollers run
            write(path, limits(4, "two"))
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: get(port, "/stats", bearer("two"))[0] == 200, "token two")
            write(path, limits(2, "one"))
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: get(port, "/stats", bearer("one"))[0] == 200, "token one again")
        write(path, limits(4, "two"))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: get(port, "/stats", bearer("two"))[0] == 200, "token two")
        eq(get(port, "/stats", bearer("one"))[0], 401, "the old token is refused")
        stop.set()
        for t in threads:
            t.join(tmo(10))
        check(not errors, "admin polling failed: %r" % errors[:1])
        # each worker reloads when its mail arrives: wait for the last one
        wait_for(lambda: all(w["generation"] >= 8 for w in
                             stats(port, bearer("two"))["per_worker"]),
                 "every SIGHUP to reload the script on every worker")
        # third and fourth fit under max_connections = 4 (once the traffic
        # thread's last connection is released)
        held.append(connect_retry(s))
        held.append(connect_retry(s))
        wait_for(lambda: status_503(s), "503 over max_connections = 4")

        # 2. a broken file: refused, the running values stay
        before = total(metrics(port, bearer("two")), "roomcast_config_reload_failures_total")
        write(path, limits(4, "three", "  max_connections_per_ip = -1,\n"))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any("configuration kept" in l for l in s.log()), "the refusal logged")
        m = metrics(port, bearer("two"))
        eq(total(m, "roomcast_config_reload_failures_total"), before + 1, "refusal counted")
        eq(get(port, "/stats", bearer("three"))[0], 401, "the broken file's token is not used")
        check(status_503(s), "max_connections = 4 still applies")

        # 3. a restart-only option changed: reported, not applied
        write(path, limits(4, "two", "  history_size = 5,\n  drain_time = 3,\n"))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any("config reload: " in l for l in s.log()), "the ignored option named")
        line = [l for l in s.log() if "config reload: " in l][-1]
        check("history_size" in line, "history_size named: %r" % line)
        check("drain_time" not in line, "--drain-time on the command line wins: %r" % line)
        for c in held:
            c.close()
    finally:
        stop.set()
        problems = s.stop()
        check(not problems, "; ".join(problems) + "\n" + s.log_tail())


def rate_conf(rate, token):
    return ("return {\n  admin_token = %r,\n  message_rate = %d,\n  message_burst = %d,\n}\n"
            % (token, rate, rate))


def echo_n(c, n, tag):
    for i in range(n):
        c.send_frame(rctest.OP_TEXT, "%s%d" % (tag, i))
        c.expect_message(rctest.OP_TEXT, "%s%d" % (tag, i))


def test_sighup_turns_the_message_rate_on_and_off(_srv):
    # conn.c calls the message gate only while the live snapshot's
    # message_rate is above 0, read per message: a SIGHUP turns the limit on
    # for a connection opened without one, and off again.
    path = conf("rate.lua", rate_conf(0, "a"))
    s = Server(["-c", path, "--echo", "--admin", "127.0.0.1:0"]).start()
    try:
        port = admin_port(s)
        c = s.connect()
        echo_n(c, 50, "off")  # no limit: 50 at once all come back
        write(path, rate_conf(5, "b"))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: get(port, "/stats", bearer("b"))[0] == 200, "message_rate = 5")
        echo_n(c, 5, "burst")  # the same connection: its burst passes
        for _ in range(10):
            c.try_send(rctest.frame(rctest.OP_TEXT, "flood"))
        c.expect_fail(1008)
        c.close()
        write(path, rate_conf(0, "c"))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: get(port, "/stats", bearer("c"))[0] == 200, "message_rate = 0")
        with s.connect() as c2:
            echo_n(c2, 50, "again")  # off again
            c2.finish()
        m = metrics(port, bearer("c"))
        eq(total(m, "roomcast_refused_connections_total", reason="message_rate"), 1,
           "one 1008 for the rate")
    finally:
        problems = s.stop()
        check(not problems, "; ".join(problems) + "\n" + s.log_tail())


def plain(fn):
    def run(srv):
        fn(srv)
    run.__name__ = fn.__name__
    return run


if __name__ == "__main__":
    ns = {"test_sighup_swaps_the_live_options": test_sighup_swaps_the_live_options,
          "test_sighup_turns_the_message_rate_on_and_off":
          test_sighup_turns_the_message_rate_on_and_off}
    rctest.main(ns, default_args=("--echo", "--admin", "off"))
