"""46_history_sqlite - durable history in a real SQLite file (scripts/chat.lua,
--history sqlite:PATH): a restart resumes (seq and epoch continue; a client
that rejoins with since gets every missed message exactly once, in order);
kill -9 under ~1000 publishes/s (integrity_check ok, everything committed is
what clients saw, at most the last flush window is missing, the epoch
changes, no seq is ever reused); retention (keep) and paging (before); each
start-up error refuses to start with one line naming the path and the cause,
exit 1, and -t says the same; a write error (RLIMIT_FSIZE, lifted with
prlimit) keeps live delivery going, shows on /health and /metrics, and
writing resumes by itself."""

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rcadmin import admin_port, get, metrics, total  # noqa: E402
from rclua import Client, script  # noqa: E402
from rctest import Failure, check, eq, tmo  # noqa: E402

CHAT = script("chat.lua")


def fresh_dir():
    return tempfile.mkdtemp(prefix="rc46-")


FAST = os.path.join(rctest.scratch_dir("rc46c-"), "fast.conf.lua")
with open(FAST, "w") as f:
    f.write("drain_time = 0\n")  # SIGTERM: no spreading of the 1001 closes


def start_server(srv, preexec=None):
    """srv.start(), with preexec (when given) run in the child before exec."""
    if preexec is None:
        return srv.start()
    # rctest.Server has no preexec hook: wrap Popen for this start only.
    real = subprocess.Popen

    def popen(*a, **kw):
        kw["preexec_fn"] = preexec
        return real(*a, **kw)
    subprocess.Popen = popen
    try:
        return srv.start()
    finally:
        subprocess.Popen = real


def start(db, *extra, preexec=None):
    if "-c" not in extra:
        extra = ("-c", FAST) + extra
    return start_server(rctest.Server(("-s", CHAT, "--admin", "off", "--history", "sqlite:" + db)
                                      + extra), preexec)


def stop_ok(srv):
    # SIGTERM drains (closes 1001, then waits up to close_timeout for the
    # clients' replies); a second one skips the wait. Both flush the store.
    if srv.alive():
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    problems = srv.stop()
    check(not problems, "clean stop: %s\n%s" % (problems, srv.log_tail()))


def broadcasts(c, n, timeout=5.0):
    out = []
    while len(out) < n:
        m = c.recv(timeout)
        if m.get("type") == "broadcast":
            out.append(m)
    return out


def publish(c, room, contents):
    for x in contents:
        c.send({"type": "broadcast", "room_id": room, "content": x})


def rows(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@rctest.server("--echo", "--admin", "off")
def test_restart_resumes_seq_epoch_and_missed_messages(_srv):
    d = fresh_dir()
    db = os.path.join(d, "var", "sub", "h.db")  # the directories do not exist yet
    srv = start(db)
    a, b = Client(srv), Client(srv)
    j = a.join("r", "alice")
    check(isinstance(j.get("epoch"), str) and j["epoch"], "joined has an epoch: %r" % j)
    eq(j.get("seq"), 0, "a new room starts at seq 0")
    epoch = j["epoch"]
    b.join("r", "bob")
    publish(a, "r", ["m%d" % i for i in range(1, 11)])
    seen = broadcasts(b, 10)
    eq([m["seq"] for m in seen], list(range(1, 11)), "bob's seqs")
    b.close()
    publish(a, "r", ["m%d" % i for i in range(11, 21)])
    eq(len(broadcasts(a, 20)), 20, "alice got all 20")
    a.close()
    stop_ok(srv)  # SIGTERM flushes
    srv = start(db)
    try:
        b = Client(srv)
        b.send({"type": "join", "room_id": "r", "user_id": "bob", "since": 10, "epoch": epoch})
        j = b.recv()
        eq({k: j.get(k) for k in ("type", "seq", "epoch", "recovered")},
           {"type": "joined", "seq": 20, "epoch": epoch, "recovered": True}, "joined after restart")
        got = [b.recv() for _ in range(10)]
        eq([(m["seq"], m["content"]) for m in got],
           [(i, "m%d" % i) for i in range(11, 21)], "every missed message once, in order")
        b.nothing(0.2)
        publish(b, "r", ["after"])
        eq(broadcasts(b, 1)[0]["seq"], 21, "the seq continues")
        # history with paging back
        b.send({"type": "history", "room_id": "r", "before": 11, "limit": 5})
        h = b.recv()
        eq([m["seq"] for m in h["messages"]], [6, 7, 8, 9, 10], "history before=11 limit=5")
        eq((h["seq"], h["epoch"]), (21, epoch), "history carries the room's seq and epoch")
        b.close()
    finally:
        stop_ok(srv)
    shutil.rmtree(d)


@rctest.server("--echo", "--admin", "off")
def test_kill9_under_load_loses_at_most_the_last_flush_and_never_reuses_a_seq(_srv):
    d = fresh_dir()
    db = os.path.join(d, "h.db")
    # keep everything: a missing message is a lost one
    conf = rctest.write_in(d, "rc.conf.lua",
                           'drain_time = 0\nhistory = { keep = 1000000, flush_ms = 10 }\n')
    srv = start(db, "-c", conf)
    pub, watcher = Client(srv), Client(srv)
    epoch = pub.join("k", "p")["epoch"]
    watcher.join("k", "w")
    # ~1000 publishes/s for ~1.5 s, then kill -9 while they still flow
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < 1.5:
        publish(pub, "k", ["x%d" % sent])
        sent += 1
        if sent % 10 == 0:
            time.sleep(max(0.0, t0 + sent / 1000.0 - time.monotonic()))
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv._join()
    seen = {}
    try:
        while True:
            m = watcher.recv(0.5)
            if m.get("type") == "broadcast":
                seen[m["seq"]] = m["content"]
    except Failure:
        pass  # the connection is gone
    check(len(seen) > 500, "the watcher saw most of %d messages (%d)" % (sent, len(seen)))

    eq(rows(db, "PRAGMA integrity_check"), [("ok",)], "integrity_check")
    stored = {seq: json.loads(data)["content"] for seq, data in rows(
        db, "SELECT seq, data FROM messages m JOIN rooms r ON r.id = m.room "
            "WHERE r.name = CAST('k' AS BLOB)")}
    check(stored, "something was committed")
    for seq, content in stored.items():
        if seq in seen:
            eq(content, seen[seq], "stored seq %d is what clients saw" % seq)
    top = max(stored)
    missing = sorted(s for s in seen if s not in stored)
    check(all(s > top for s in missing),
          "only a tail may be missing: %r after the last stored %d" % (missing[:5], top))
    # at 1000/s, a 10 ms flush window is ~10 messages; allow for a loaded machine
    check(len(missing) <= 200, "%d seen messages missing from the store" % len(missing))

    srv = start(db, "-c", conf)
    try:
        c = Client(srv)
        j = c.join("k", "p2")
        check(j["epoch"] != epoch, "an unclean start changes the epoch")
        check(j["seq"] >= max(seen), "seq continues past everything seen (%d < %d)" %
              (j["seq"], max(seen)))
        publish(c, "k", ["fresh"])
        s = broadcasts(c, 1)[0]["seq"]
        check(s not in seen and s > max(seen), "no seq reused: %d" % s)
        c.send({"type": "join", "room_id": "k2", "since": 3, "epoch": epoch})
        c.recv()
        c2 = Client(srv)
        c2.send({"type": "join", "room_id": "k", "since": 3, "epoch": epoch})
        j2 = c2.recv()
        eq(j2.get("recovered"), False, "the old epoch cannot recover")
        c.close()
        c2.close()
    finally:
        stop_ok(srv)
    shutil.rmtree(d)


@rctest.server("--echo", "--admin", "off")
def test_retention_keep(_srv):
    d = fresh_dir()
    db = os.path.join(d, "h.db")
    conf = rctest.write_in(d, "rc.conf.lua", 'drain_time = 0\n'
                           'history = { store = "sqlite", path = %s, keep = 50, max_age = "7d", '
                           'flush_ms = 5 }\n' % json.dumps(db))
    srv = rctest.Server(("-c", conf, "-s", CHAT, "--admin", "off")).start()
    try:
        c = Client(srv)
        c.join("k", "u")
        publish(c, "k", ["m%d" % i for i in range(1, 121)])
        eq(broadcasts(c, 120)[-1]["seq"], 120, "all published")
        time.sleep(0.1)  # retention runs with the writer's commits (flush_ms = 5)
        c.send({"type": "history", "room_id": "k", "since": 0, "limit": 1000})
        h = c.recv()
        eq([m["seq"] for m in h["messages"]], list(range(71, 121)), "keep = 50")
        c.send({"type": "history", "room_id": "k", "before": 71})
        eq(c.recv()["messages"], [], "nothing before the kept ones")
        c.close()
    finally:
        stop_ok(srv)
    eq(rows(db, "SELECT count(*), min(seq), max(seq) FROM messages"), [(50, 71, 120)],
       "the file keeps 50")
    shutil.rmtree(d)


def refused(args, path, cause):
    for extra in ((), ("-t",)):
        # --log-level warn: the start-up's info lines (the tick clock's) are
        # not what this checks
        r = subprocess.run([rctest.BIN, "-p", "0", "--admin", "off", "-s", CHAT, "--log-level",
                            "warn", "--history", "sqlite:" + path] + list(extra) + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=tmo(10))
        err = r.stderr.decode().strip().splitlines()
        eq(r.returncode, 1, "exit status for %s (%s) %s" % (path, cause, extra))
        check(len(err) == 1 and path in err[0] and cause in err[0],
              "one line naming %s and '%s' %s: %r" % (path, cause, extra, err))


@rctest.server("--echo", "--admin", "off")
def test_startup_errors(_srv):
    d = fresh_dir()
    junk = os.path.join(d, "junk.db")
    with open(junk, "w") as f:
        f.write("not a database, just text long enough to have a header, and then some\n")
    refused((), junk, "not a database")
    newer = os.path.join(d, "newer.db")
    con = sqlite3.connect(newer)
    con.execute("CREATE TABLE t(x)")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    refused((), newer, "schema version 99 is newer")
    refused((), os.path.join(junk, "sub", "x.db"), "cannot create directory")
    if os.geteuid() != 0:
        ro = os.path.join(d, "ro")
        os.mkdir(ro, 0o555)
        refused((), os.path.join(ro, "x.db"), "not writable")
    locked = os.path.join(d, "locked.db")
    srv = start(locked)
    try:
        refused((), locked, "locked by another roomcast")
    finally:
        stop_ok(srv)
    shutil.rmtree(d)


@rctest.server("--echo", "--admin", "off")
def test_write_errors_degrade_and_recover(_srv):
    d = fresh_dir()
    db = os.path.join(d, "h.db")
    srv = rctest.Server(("-c", FAST, "-s", CHAT, "--admin", "127.0.0.1:0", "--history",
                         "sqlite:" + db))
    limit = 512 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    start_server(srv, small_files)
    try:
        port = admin_port(srv)
        eq(get(port, "/health")[0], 200, "healthy at start")
        a, b = Client(srv), Client(srv)
        a.join("w", "a")
        b.join("w", "b")
        big = "y" * 8000
        n = 0
        degraded = False
        while n < 400 and not degraded:
            publish(a, "w", ["%d %s" % (n, big) for _ in range(10)])
            n += 10
            eq(len(broadcasts(b, 10)), 10, "live delivery goes on")
            st, _, body = get(port, "/health")
            degraded = "degraded" in body
        check(degraded, "/health reports the store degraded after %d big messages" % n)
        eq(st, 200, "store_errors = deliver: still serving (200)")
        check("write error" in body, "/health says why: %s" % body)
        check(total(metrics(port), "roomcast_store_write_errors_total") >= 1, "write errors counted")
        publish(a, "w", ["during"])
        eq(broadcasts(b, 1)[0]["content"], "during", "delivery while degraded")
        # the writer thread logs it; our reader of the server's stderr may
        # not have the line yet when /health already says degraded
        deadline = time.monotonic() + tmo(5)
        while True:
            errors = [l for l in srv.log() if "live delivery goes on" in l]
            if errors or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(1 <= len(errors) <= 5, "logged once per interval, not per message: %d" % len(errors))
        # the cause goes away
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        deadline = time.monotonic() + tmo(10)
        while "degraded" in get(port, "/health")[2]:
            check(time.monotonic() < deadline, "writing resumes by itself")
            time.sleep(0.1)
        a.conn.close()
        b.conn.close()
    finally:
        stop_ok(srv)
    eq(rows(db, "SELECT count(*) FROM messages")[0][0], n + 1, "nothing lost once it resumed")
    shutil.rmtree(d)


@rctest.server("--echo", "--admin", "off")
def test_store_errors_refuse(_srv):
    """store_errors = "refuse": while the store cannot write, a broadcast is
    refused with `unavailable` (with its id when it sent one, without one
    when it did not: no refusal is silent), nothing is delivered for it, and
    /health answers 503; all is well again once writes resume."""
    d = fresh_dir()
    db = os.path.join(d, "h.db")
    conf = rctest.write_in(d, "rc.conf.lua", 'drain_time = 0\nstore_errors = "refuse"\n')
    srv = rctest.Server(("-c", conf, "-s", CHAT, "--admin", "127.0.0.1:0", "--history",
                         "sqlite:" + db))
    start_server(srv, lambda: resource.setrlimit(resource.RLIMIT_FSIZE,
                                                 (256 * 1024, resource.RLIM_INFINITY)))
    try:
        port = admin_port(srv)
        a = Client(srv)
        a.join("w", "a")
        big = "y" * 8000
        refused = None
        for i in range(200):
            a.send({"type": "broadcast", "room_id": "w", "content": big, "id": i})
            m = a.recv()
            if m.get("type") == "error":
                refused = m
                break
            eq(m.get("type"), "broadcast", "delivered while writes work")
            eq(a.recv().get("type"), "ack", "acked with its seq")
            time.sleep(0.005)
        check(refused is not None, "a publish was refused once the store failed")
        eq(refused.get("code"), "unavailable", "refusal code")
        eq(refused.get("id"), i, "the refusal carries the id")
        eq(get(port, "/health")[0], 503, "store_errors = refuse: /health 503")
        for _ in range(3):
            a.send({"type": "broadcast", "room_id": "w", "content": big})
            m = a.recv()
            eq((m.get("type"), m.get("code"), "id" in m), ("error", "unavailable", False),
               "a broadcast without an id is refused too, without an id")
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        deadline = time.monotonic() + tmo(10)
        while get(port, "/health")[0] != 200:
            check(time.monotonic() < deadline, "writing resumes by itself")
            time.sleep(0.1)
        a.send({"type": "broadcast", "room_id": "w", "content": "back", "id": "b"})
        eq(a.recv().get("content"), "back", "accepted again")
        eq(a.recv().get("type"), "ack", "acked")
        a.conn.close()
    finally:
        stop_ok(srv)
    shutil.rmtree(d)


@rctest.server("--echo", "--admin", "off")
def test_reload_while_history_reads_wait(_srv):
    """Big history reads in flight across SIGHUP: every answer arrives whole,
    nothing is lost or reordered on the connection, and the next messages
    run in the new generation (the wait semantics are 45_lua_async's)."""
    d = fresh_dir()
    db = os.path.join(d, "h.db")
    # Six 2.4 MB answers are 14 MB: above the default 8M send queue limit, a
    # loaded machine's slow reader would see answers dropped by the
    # slow-consumer policy, which is not what this test is about.
    srv = start(db, "--sendq-limit", "64M")
    try:
        c = Client(srv)
        c.join("big", "u")
        body = "z" * 8000
        publish(c, "big", ["%d %s" % (i, body) for i in range(300)])
        eq(len(broadcasts(c, 300)), 300, "filled")
        nworkers = int(os.environ.get("RC_WORKERS") or "1")
        before = len([l for l in srv.log() if "reload: generation" in l])
        for i in range(6):
            c.send({"type": "history", "room_id": "big", "since": 0, "limit": 1000, "id": i})
        srv.proc.send_signal(signal.SIGHUP)
        c.send({"type": "presence", "room_id": "big", "id": "after"})
        for i in range(6):
            h = c.recv(10)
            eq((h.get("type"), h.get("id"), len(h.get("messages", []))), ("history", i, 300),
               "history answer %d whole and in order" % i)
        eq(c.recv().get("id"), "after", "the message sent after SIGHUP runs after them")
        deadline = time.monotonic() + tmo(10)
        while len([l for l in srv.log() if "reload: generation" in l]) < before + nworkers:
            check(time.monotonic() < deadline, "every worker reloaded")
            time.sleep(0.05)
        c.close()
    finally:
        stop_ok(srv)
    shutil.rmtree(d)


SPLICE = os.path.join(rctest.scratch_dir("rc46s-"), "splice.lua")
with open(SPLICE, "w") as f:
    f.write("""
local rc = require("roomcast")
return {
  on_message = function(conn, msg, is_binary)
    local room = rc.room("s")
    if msg == "fill" then
      conn:join("s")
      room:publish('{"a":1}', { wait = true })
      room:publish("\\0\\1", { binary = true, wait = true })
      room:publish("plain text", { wait = true })
      room:publish('{"b":"}"}', { wait = true })
      room:publish("[1]", { wait = true })
      room:publish('{"c":[]}', { wait = true })
      conn:send("filled")
    elseif msg == "read" then
      local json, info, n = room:history({ since = 0, limit = 1000, json = true })
      conn:send("n=" .. n .. " len=" .. json:len() .. " last=" .. info.last_seq)
      conn:send(tostring(json))
      conn:send('{"wrapped":', json, "}")
      conn:send('{"again":', json, "}")
      conn:send(tostring(json), "", "")
      -- a frame of 1026 bytes: framed in the answer's own buffer, queued
      -- by reference; then a head longer than the room before the array
      local big = room:history({ since = 0, limit = 1000, json = true })
      conn:send('{"big":' .. string.rep(" ", 480), big, string.rep(" ", 510) .. "}")
      conn:send(big, "", "")
      local long = room:history({ since = 0, limit = 1000, json = true })
      conn:send('{"long":' .. string.rep(" ", 600), long, "}")
      -- newest first from the store: the array is laid out from the
      -- buffer's end; the same bytes, framed in place the same way
      local nw = room:history({ limit = 1000, newest = true, json = true })
      conn:send('{"newest":' .. string.rep(" ", 480), nw, string.rep(" ", 510) .. "}")
      local n4 = room:history({ limit = 4, newest = true, json = true })
      conn:send(n4, "", "")
      local n1 = room:history({ before = 3, limit = 1, newest = true, json = true })
      conn:send(n1, "", "")
      local bad = room:history({ since = 0, limit = 1, json = true })
      local ok = pcall(conn.send, conn, bad, {})
      conn:send("table part refused: " .. tostring(not ok))
      -- json:free(): released at once; any later use is an error
      local fr = room:history({ since = 0, limit = 1000, json = true })
      conn:send('{"freed":', fr, "}")
      fr:free()
      fr:free()
      local e1 = select(2, pcall(tostring, fr))
      local e2 = select(2, pcall(conn.send, conn, "a", fr, "b"))
      local e3 = select(2, pcall(fr.len, fr))
      conn:send("after free: " .. tostring(e1):match("the json buffer was freed") .. "|" ..
        tostring(e2):match("the json buffer was freed") .. "|" ..
        tostring(e3):match("the json buffer was freed"))
    elseif msg == "fillg" then
      local g = rc.room("g")
      for i = 1, 40 do
        g:publish('{"i":' .. i .. ',"pad":"' .. string.rep("y", 3000) .. '"}', { wait = true })
      end
      conn:send("filledg")
    elseif msg == "readg" then
      -- right after a read of tiny rows the store's size guess for room g
      -- is far short: the answer's block grows, in both layouts
      room:history({ since = 0, limit = 1000, json = true }):free()
      local a = rc.room("g"):history({ limit = 1000, newest = true, json = true })
      conn:send(a, "", "")
      room:history({ since = 0, limit = 1000, json = true }):free()
      local b = rc.room("g"):history({ since = 0, limit = 1000, json = true })
      conn:send(b, "", "")
    end
  end,
}
""")


@rctest.server("--echo", "--admin", "off")
def test_history_json_splices_the_stored_objects(_srv):
    """room:history{json = true} (what chat.lua's history uses): C splices
    the text entries that are JSON objects into one array, as stored,
    skipping binary entries and texts that are not objects; tostring, :len
    and conn:send(head, json, tail) give the same bytes, in one frame;
    json:free() releases it, and any use after it raises."""
    d = fresh_dir()
    srv = rctest.Server(("-c", FAST, "-s", SPLICE, "--admin", "off", "--history",
                         "sqlite:" + os.path.join(d, "h.db")))
    srv.start()
    try:
        c = Client(srv)
        c.send("fill")
        for _ in range(6):
            c.conn.recv(5)  # the room's own deliveries (one binary)
        eq(c.raw(), b"filled", "filled")
        c.send("read")
        want = '[{"a":1},{"b":"}"},{"c":[]}]'
        eq(c.raw().decode(), "n=3 len=%d last=6" % len(want), "count, size, last seq")
        eq(c.raw().decode(), want, "tostring: objects only, as stored, oldest first")
        eq(json.loads(c.raw()), {"wrapped": json.loads(want)}, "head .. json .. tail, one frame")
        eq(json.loads(c.raw()), {"again": json.loads(want)}, "the same answer sent again")
        eq(c.raw().decode(), want, "string parts")
        b = c.raw()
        eq(len(b), 7 + 480 + len(want) + 511, "head 487 .. json .. tail 511: bytes")
        eq(json.loads(b), {"big": json.loads(want)}, "head 487 .. json .. tail 511: one frame")
        eq(c.raw().decode(), want, "the answer as a part, after its buffer became a frame")
        eq(json.loads(c.raw()), {"long": json.loads(want)}, "a head longer than the room")
        b = c.raw()
        eq(len(b), 10 + 480 + len(want) + 511, "newest: head 490 .. json .. tail 511: bytes")
        eq(json.loads(b), {"newest": json.loads(want)}, "newest, limit 1000: the same array")
        eq(c.raw().decode(), '[{"b":"}"},{"c":[]}]', "newest, limit 4: the last 4 entries' objects")
        eq(c.raw().decode(), '[]', "newest before 3 limit 1: a binary entry only: empty")
        eq(c.raw().decode(), "table part refused: true", "a part that is neither")
        eq(json.loads(c.raw()), {"freed": json.loads(want)}, "sent, then freed")
        eq(c.raw().decode(), "after free: " + "|".join(["the json buffer was freed"] * 3),
           "tostring, send and len after free raise")
        c.send("fillg")
        eq(c.raw(), b"filledg", "room g filled")
        time.sleep(0.3)  # committed: the reads below come from the database
        c.send("readg")
        want_g = [{"i": i, "pad": "y" * 3000} for i in range(1, 41)]
        eq(json.loads(c.raw()), want_g, "newest first: the block grown from a short guess")
        eq(json.loads(c.raw()), want_g, "oldest first: the block grown from a short guess")
        c.conn.close()
    finally:
        stop_ok(srv)
    shutil.rmtree(d)


if __name__ == "__main__":
    rctest.main(globals(), default_args=("--echo", "--admin", "off"))
