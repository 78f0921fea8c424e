"""cluster - three roomcast nodes (2 workers each, node_ttl 2 s) and a
redis-server the test starts on a free port in a temp dir (--save ""
--appendonly no), with python3-websockets clients spread over the nodes:

  order     4 publishers on different nodes at once: every member on every
            node sees the same sequence, gap-free;
  direct    a direct message between users on different nodes;
  presence  room presence lists the users of every node and counts every
            connection, with a user id or without (as one node does), in
            the users' answer and in the count-only one; a fourth node
            killed with kill -9 leaves both within node_ttl;
  firstjoin a room with history joined on nodes that never saw it:
            `joined` carries the room's seq and epoch, `since` recovers
            exactly what was missed, and the next message arrives once;
  move      a client leaves one node and joins another with `since`: it
            gets what it missed, gap-free (the stream is the history);
  sighup    SIGHUP on one node while publishers flow: one gap-free sequence;
  outage    redis-server killed for 2 s under traffic and restarted (empty:
            a new epoch): no client is disconnected, publishes during the
            outage are answered `unavailable`, /health is 503
            {"status":"degraded","bus":"down"} then 200, afterwards every
            member sees one gap-free sequence on every node;
  api       the HTTP API (/api/) of one node reaches the others: a publish
            on node 0 reaches members on nodes 1 and 2 (and its history
            reads the Redis stream on any node); presence on node 0 lists
            the users of nodes 1 and 2 with the cluster's connection count;
            a disconnect on node 0 closes the user's connections on nodes 1
            and 2 with the code and reason given;
  dashboard the admin dashboard (GET / on the admin port) in headless
            Chromium (tests/integration/cluster/dashboard.js): the bus state
            and the nodes it shows are /stats's, while Redis is up and while
            it is down;
  sigterm   SIGTERM of one node: its clients get 1001, the others keep
            being served.

Registered once in cmake/tests.cmake (integration/cluster): it runs its own
nodes with 2 workers each, so RC_WORKERS does not apply.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import websockets

BIN = os.environ.get("ROOMCAST_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "build", "roomcast")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts",
                      "chat.lua")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rc-cluster-")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


NODE_TTL = 2
TOKEN = "cluster-api-token"


class Node:
    def __init__(self, redis):
        self.port = free_port()
        self.admin = free_port()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [BIN, "-b", "127.0.0.1", "-p", str(self.port), "-w", "2", "--admin",
             "127.0.0.1:%d" % self.admin, "-s", SCRIPT, "--redis",
             "redis://127.0.0.1:%d/0" % redis.port, "--cluster-node-ttl", str(NODE_TTL),
             "--api-token", TOKEN],
            stdout=self.log, stderr=self.log)

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path), timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin, path), data=data,
                                     method=method,
                                     headers={"Authorization": "Bearer " + TOKEN,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.log.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace")
        for marker in ("Sanitizer", "runtime error:"):
            if marker in text:
                raise AssertionError("sanitizer report in node log:\n" + text[-2000:])
        return self.proc.returncode


async def connect(node, user, room):
    for _ in range(100):
        try:
            ws = await websockets.connect(node.url())
            break
        except OSError:
            await asyncio.sleep(0.05)
    await ws.send(json.dumps({"type": "join", "room_id": room, "user_id": user}))
    m = json.loads(await ws.recv())
    assert m["type"] == "joined", m
    return ws


async def collect(ws, until_quiet=1.5):
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), until_quiet)))
    except asyncio.TimeoutError:
        pass
    return out


def broadcasts(msgs):
    return [(m["seq"], m["content"]) for m in msgs if m.get("type") == "broadcast"]


def gap_free(seqs, what):
    for a, b in zip(seqs, seqs[1:]):
        assert b == a + 1, "%s: seq %d after %d" % (what, b, a)


async def wait_synced(clients, room):
    """Probe until a message reaches every member (every node subscribed)."""
    for i in range(100):
        await clients[0].send(json.dumps({"type": "broadcast", "room_id": room,
                                          "content": "probe%d" % i}))
        got = [await collect(c, 0.3) for c in clients]
        if all(any(m.get("content") == "probe%d" % i for m in g) for g in got):
            await asyncio.gather(*(collect(c, 0.3) for c in clients))
            return
    raise AssertionError("the room never reached every node")


async def test_order(nodes):
    room = "order"
    members = [await connect(nodes[i % 3], "u%d" % i, room) for i in range(6)]
    await wait_synced(members, room)
    n = 50

    async def publish(ws, tag):
        for k in range(n):
            await ws.send(json.dumps({"type": "broadcast", "room_id": room,
                                      "content": "%s-%d" % (tag, k)}))

    await asyncio.gather(*(publish(members[i], "p%d" % i) for i in range(4)))
    got = await asyncio.gather(*(collect(m) for m in members))
    seqs0 = broadcasts(got[0])
    assert len(seqs0) == 4 * n, "member 0 got %d of %d" % (len(seqs0), 4 * n)
    gap_free([s for s, _ in seqs0], "member 0")
    for i, g in enumerate(got[1:], 1):
        assert broadcasts(g) == seqs0, "member %d saw another sequence" % i
    for m in members:
        await m.close()
    print("ok order: 6 members on 3 nodes, 4 publishers x %d, one gap-free sequence" % n)


async def recv_type(ws, typ, tmo=5.0):
    end = time.monotonic() + tmo
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), max(0.05, end - time.monotonic())))
        if m.get("type") == typ:
            return m


async def test_direct(nodes):
    a = await connect(nodes[0], "dm-a", "dm")
    b = await connect(nodes[1], "dm-b", "dm")
    await wait_synced([a, b], "dm")  # both nodes subscribed (users too)
    await a.send(json.dumps({"type": "direct", "to": "dm-b", "content": "psst", "id": 1}))
    ack = await recv_type(a, "ack")
    assert ack.get("delivered") == 1, ack  # accepted by the bus, one node has dm-b
    m = await recv_type(b, "direct")
    assert m["from"] == "dm-a" and m["content"] == "psst", m
    await a.send(json.dumps({"type": "direct", "to": "nobody", "content": "x", "id": 2}))
    err = await recv_type(a, "error")
    assert err["code"] == "not_found", err
    await a.close()
    await b.close()
    print("ok direct: across nodes, ack delivered 1; an absent user: not_found")


async def presence(ws, room):
    await ws.send(json.dumps({"type": "presence", "room_id": room}))
    m = await recv_type(ws, "presence")
    return sorted(m["users"])


async def presence_full(ws, room, count_only=False):
    msg = {"type": "presence", "room_id": room}
    if count_only:
        msg["count_only"] = True
    await ws.send(json.dumps(msg))
    return await recv_type(ws, "presence")


async def join_anonymous(node, room):
    ws = await websockets.connect(node.url())
    await ws.send(json.dumps({"type": "join", "room_id": room}))
    m = await recv_type(ws, "joined")
    assert m["room_id"] == room, m
    return ws


async def test_presence(nodes, redis):
    room = "pres"
    extra = Node(redis)
    members = [await connect(n, "pu%d" % i, room) for i, n in enumerate(nodes + [extra])]
    await wait_synced(members, room)
    # a connection without a user id on the node to be killed: counted, not listed
    anon = await join_anonymous(extra, room)
    want = ["pu0", "pu1", "pu2", "pu3"]
    for _ in range(50):
        got = [await presence_full(m, room) for m in members[:3]]
        if all(sorted(g["users"]) == want and g["count"] == 5 for g in got):
            break
        await asyncio.sleep(0.1)
    assert all(sorted(g["users"]) == want and g["count"] == 5 for g in got), got
    for m in members[:3]:
        c = await presence_full(m, room, count_only=True)
        assert c == {"type": "presence", "room_id": room, "count": 5}, c
    extra.kill9()
    t0 = time.monotonic()
    while True:
        c = (await presence_full(members[0], room, count_only=True))["count"]
        if c == 3:
            break
        assert c == 5, c  # the node's share leaves whole: its user and its anonymous one
        assert time.monotonic() - t0 < NODE_TTL + 2.5, "node 3's share still counted: %r" % c
        await asyncio.sleep(0.2)
    left = time.monotonic() - t0
    for m in members[:3]:
        g = await presence_full(m, room)
        assert sorted(g["users"]) == want[:3] and g["count"] == 3, g
    for m in members[:3]:
        await m.close()
    try:
        await anon.close()
    except Exception:
        pass
    print("ok presence: 4 nodes' users and 5 connections (1 without a user) on every node, "
          "count_only agrees; kill -9 took its user and its count after %.1f s (node_ttl %d)"
          % (left, NODE_TTL))


async def test_first_join(nodes):
    """Issue 11: a room with history, joined on a node that never saw it."""
    room = "firstjoin"
    n = 20
    pub = await websockets.connect(nodes[0].url())
    await pub.send(json.dumps({"type": "join", "room_id": room, "user_id": "fj-pub"}))
    epoch = (await recv_type(pub, "joined"))["epoch"]
    for k in range(1, n + 1):
        await pub.send(json.dumps({"type": "broadcast", "room_id": room, "content": "m%d" % k,
                                   "id": k}))
        ack = await recv_type(pub, "ack")
        assert ack["seq"] == k, ack
    await collect(pub, 0.3)
    # node 1: first join, no since
    a = await websockets.connect(nodes[1].url())
    await a.send(json.dumps({"type": "join", "room_id": room, "user_id": "fj-a"}))
    ja = await recv_type(a, "joined")
    assert ja["seq"] == n and ja["epoch"] == epoch, (ja, epoch)
    # what node 1 shows of the room is its seq, before any new message
    for _ in range(50):
        st, rl = nodes[1].api("GET", "/api/rooms")
        mine = [r for r in rl["rooms"] if r["room_id"] == room]
        if mine and mine[0]["seq"] == n:
            break
        await asyncio.sleep(0.05)
    assert mine and mine[0]["seq"] == n and mine[0]["members"] == 1, (st, rl)
    # node 2: first join with since = n - 5
    b = await websockets.connect(nodes[2].url())
    await b.send(json.dumps({"type": "join", "room_id": room, "user_id": "fj-b",
                             "since": n - 5, "epoch": epoch}))
    got_b = await collect(b, 1.0)
    jb = [m for m in got_b if m.get("type") == "joined"]
    assert len(jb) == 1 and jb[0]["seq"] == n and jb[0]["epoch"] == epoch, got_b
    assert jb[0]["recovered"] is True, jb
    assert broadcasts(got_b) == [(k, "m%d" % k) for k in range(n - 4, n + 1)], got_b
    rest_a = await collect(a, 0.5)
    assert broadcasts(rest_a) == [], rest_a  # history is not replayed live
    # the next message: exactly once on each first-join node, seq n + 1
    await pub.send(json.dumps({"type": "broadcast", "room_id": room, "content": "next"}))
    for ws, who in ((a, "node 1"), (b, "node 2")):
        got = broadcasts(await collect(ws, 1.0))
        assert got == [(n + 1, "next")], "%s: %r" % (who, got)
    for ws in (pub, a, b):
        await ws.close()
    print("ok firstjoin: joined seq %d epoch %s on nodes that never saw the room; since=%d "
          "recovered the last 5; the next message came once with seq %d"
          % (n, epoch, n - 5, n + 1))


async def presence_count(ws, room):
    await ws.send(json.dumps({"type": "presence", "room_id": room}))
    m = await recv_type(ws, "presence")
    return m["count"]


async def test_api(nodes):
    room = "api"
    # ap1 twice on node 1 (two connections of one user), ap2 on node 2;
    # nobody of the room on node 0, whose API is asked
    a1 = await connect(nodes[1], "ap1", room)
    a1b = await connect(nodes[1], "ap1", room)
    a2 = await connect(nodes[2], "ap2", room)
    await wait_synced([a1, a1b, a2], room)
    st, r = nodes[0].api("POST", "/api/publish", {"room_id": room, "content": "from the api"})
    assert st == 200 and r["seq"] >= 1, (st, r)
    seq = r["seq"]
    for ws in (a1, a1b, a2):
        m = await recv_type(ws, "broadcast")
        assert m["content"] == "from the api" and m["seq"] == seq and m["sender"] == "server", m
    # history: the room's Redis stream, read on a node without the room
    st, h = nodes[0].api("GET", "/api/rooms/%s/history?since=%d" % (room, seq - 1))
    assert st == 200 and h["last_seq"] == seq, (st, h)
    assert [m["content"] for m in h["messages"]] == ["from the api"], h
    st, h2 = nodes[2].api("GET", "/api/rooms/%s/history?limit=1" % room)
    assert st == 200 and h2["epoch"] == h["epoch"] and h2["messages"] == h["messages"], (st, h2)
    # presence: node 0 has nobody in the room and still lists every node's
    for _ in range(50):
        st, p = nodes[0].api("GET", "/api/rooms/%s/presence" % room)
        if st == 200 and sorted(p["users"]) == ["ap1", "ap2"] and p["count"] == 3:
            break
        await asyncio.sleep(0.1)
    assert st == 200 and sorted(p["users"]) == ["ap1", "ap2"], (st, p)
    assert p["count"] == 3, p  # connections: ap1's two and ap2's
    st, c = nodes[0].api("GET", "/api/rooms/%s/count" % room)  # the count alone
    assert st == 200 and c == {"room_id": room, "count": 3}, (st, c)
    assert await presence_count(a2, room) == 3  # chat.lua's presence: the same count
    st, e = nodes[0].api("GET", "/api/rooms/nowhere/presence")
    assert st == 404 and e["code"] == "room_not_found", (st, e)
    # disconnect: asked on node 0, ap1's connections are on node 1
    st, d = nodes[0].api("POST", "/api/disconnect", {"user_id": "ap1", "code": 4003,
                                                     "reason": "kicked by api"})
    assert st == 200 and d["closed"] == 1, (st, d)  # one node had ap1's connections
    for ws in (a1, a1b):
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as e:
            assert e.code == 4003 and e.reason == "kicked by api", (e.code, e.reason)
    assert a2.open, "ap2 was disconnected too"
    for _ in range(50):  # node 1 leaves ap1's channel once its connections are gone
        st, d = nodes[0].api("POST", "/api/disconnect", {"user_id": "ap1", "code": 4003})
        if d.get("closed") == 0:
            break
        await asyncio.sleep(0.1)
    assert st == 200 and d["closed"] == 0, (st, d)  # ap1 is connected nowhere now
    for _ in range(50):
        st, p = nodes[0].api("GET", "/api/rooms/%s/presence" % room)
        if p.get("users") == ["ap2"]:
            break
        await asyncio.sleep(0.1)
    assert p["users"] == ["ap2"] and p["count"] == 1, p
    await a2.close()
    print("ok api: publish on node 0 reached nodes 1 and 2 (seq %d), history from the "
          "stream, presence of 2 users / 3 connections, disconnect 4003 across nodes" % seq)


DASHBOARD_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard.js")


def dashboard(node, state):
    """The dashboard of node in Chromium shows bus state `state` and /stats's nodes."""
    env = dict(os.environ)
    r = subprocess.run(["node", DASHBOARD_JS, str(node.admin), state], env=env,
                       capture_output=True, text=True, timeout=120)
    out = (r.stdout + r.stderr).strip()
    if "SKIP:" in out:
        return out
    assert r.returncode == 0, "dashboard.js %s: %s" % (state, out)
    return out


def node_available():
    return shutil.which("node") is not None


async def test_dashboard(nodes, redis):
    if not node_available():
        print("skip dashboard: no node")
        return
    up = dashboard(nodes[0], "up")
    redis.kill()
    for _ in range(100):
        if nodes[0].get("/health")[0] == 503:
            break
        await asyncio.sleep(0.05)
    try:
        down = dashboard(nodes[0], "down")
    finally:
        redis.start()
    for n in nodes:
        for _ in range(200):
            if n.get("/health")[0] == 200:
                break
            await asyncio.sleep(0.05)
        assert n.get("/health")[0] == 200
    print("ok dashboard: %s; %s" % (up, down))


async def test_move(nodes):
    room = "move"
    pub = await connect(nodes[0], "mv-pub", room)
    mover = await connect(nodes[1], "mv", room)
    await wait_synced([pub, mover], room)
    for k in range(10):
        await pub.send(json.dumps({"type": "broadcast", "room_id": room, "content": "a%d" % k}))
    seen = broadcasts(await collect(mover, 1.0))
    assert len(seen) == 10, seen
    last = seen[-1][0]
    await mover.close()
    for k in range(15):
        await pub.send(json.dumps({"type": "broadcast", "room_id": room, "content": "b%d" % k}))
    await collect(pub, 0.5)
    ws = await websockets.connect(nodes[2].url())
    await ws.send(json.dumps({"type": "join", "room_id": room, "user_id": "mv", "since": last}))
    msgs = await collect(ws, 1.5)
    joined = [m for m in msgs if m.get("type") == "joined"]
    assert joined and joined[0].get("recovered") is True, msgs
    got = sorted(set(broadcasts(msgs)))
    assert [c for _, c in got] == ["b%d" % k for k in range(15)], got
    gap_free([last] + [s for s, _ in got], "the moved client")
    await ws.close()
    await pub.close()
    print("ok move: node 1 -> node 2 with since=%d: 15 missed, gap-free" % last)


async def test_sighup(nodes):
    room = "hup"
    members = [await connect(nodes[i % 3], "h%d" % i, room) for i in range(6)]
    await wait_synced(members, room)
    n = 40

    async def publish(ws, tag):
        for k in range(n):
            await ws.send(json.dumps({"type": "broadcast", "room_id": room,
                                      "content": "%s-%d" % (tag, k)}))
            await asyncio.sleep(0.005)

    async def hup():
        await asyncio.sleep(0.05)
        nodes[1].proc.send_signal(signal.SIGHUP)

    await asyncio.gather(hup(), *(publish(members[i], "q%d" % i) for i in range(3)))
    got = await asyncio.gather(*(collect(m) for m in members))
    seqs0 = broadcasts(got[0])
    assert len(seqs0) == 3 * n, "member 0 got %d of %d" % (len(seqs0), 3 * n)
    gap_free([s for s, _ in seqs0], "sighup member 0")
    for i, g in enumerate(got[1:], 1):
        assert broadcasts(g) == seqs0, "member %d saw another sequence" % i
    for m in members:
        assert m.open
        await m.close()
    assert nodes[1].proc.poll() is None
    print("ok sighup: node 1 reloaded under 3 x %d publishes, one gap-free sequence" % n)


async def test_outage(nodes, redis):
    room = "outage"
    members = [await connect(nodes[i % 3], "o%d" % i, room) for i in range(3)]
    await wait_synced(members, room)
    redis.kill()
    await asyncio.sleep(0.3)
    await members[0].send(json.dumps({"type": "broadcast", "room_id": room, "content": "x"}))
    during = await collect(members[0], 1.0)
    errs = [m for m in during if m.get("type") == "error"]
    assert errs and errs[0]["code"] == "unavailable", "during the outage: %r" % during
    st, body = nodes[1].get("/health")
    assert st == 503 and json.loads(body) == {"status": "degraded", "bus": "down"}, (st, body)
    await asyncio.sleep(0.7)
    redis.start()
    await wait_synced(members, room)  # reconnected, resubscribed, a new epoch
    for n in nodes:
        st, body = n.get("/health")
        assert st == 200, (st, body)
    st, body = nodes[0].get("/stats")
    bus = json.loads(body)["bus"]
    assert bus["kind"] == "redis" and bus["state"] == "up" and bus["reconnects"] >= 1, bus
    assert len(bus["nodes"]) == 3, bus
    for k in range(20):
        await members[k % 3].send(json.dumps({"type": "broadcast", "room_id": room,
                                              "content": "after-%d" % k}))
    got = await asyncio.gather(*(collect(m) for m in members))
    seqs = broadcasts(got[0])
    assert len(seqs) == 20, got[0]
    gap_free([s for s, _ in seqs], "after the outage")
    for g in got[1:]:
        assert broadcasts(g) == seqs, "members disagree after the outage"
    for m in members:
        assert m.open, "a client was disconnected by the outage"
        await m.close()
    print("ok outage: clients stayed connected, errors during, gap-free after")


async def test_sigterm(nodes):
    room = "term"
    members = [await connect(nodes[i % 3], "t%d" % i, room) for i in range(6)]
    await wait_synced(members, room)
    nodes[2].proc.send_signal(signal.SIGTERM)
    for i in (2, 5):
        try:
            while True:
                await asyncio.wait_for(members[i].recv(), 10)
        except websockets.ConnectionClosed as e:
            assert e.code == 1001, "node 2's client closed with %s" % e.code
    await members[0].send(json.dumps({"type": "broadcast", "room_id": room, "content": "still"}))
    for i in (0, 1, 3, 4):
        got = broadcasts(await collect(members[i], 1.0))
        assert [c for _, c in got] == ["still"], "member %d: %r" % (i, got)
        await members[i].close()
    print("ok sigterm: its clients got 1001, the other nodes keep serving")


async def main():
    redis = Redis()
    redis.start()
    nodes = [Node(redis) for _ in range(3)]
    try:
        await test_order(nodes)
        await test_direct(nodes)
        await test_presence(nodes, redis)
        await test_first_join(nodes)
        await test_move(nodes)
        await test_sighup(nodes)
        await test_outage(nodes, redis)
        await test_api(nodes)
        await test_dashboard(nodes, redis)
        await test_sigterm(nodes)
    finally:
        for n in nodes:
            n.stop()
        redis.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
