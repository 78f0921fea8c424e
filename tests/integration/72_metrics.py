#!/usr/bin/python3
"""72_metrics - the admin listener: /metrics in the Prometheus text format
(parsed by prometheus_client) moving with traffic, /stats JSON, /health,
and the bearer token."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import OP_TEXT, check, eq, server  # noqa: E402
from rcadmin import admin_port, conf, get, metrics, stats, total  # noqa: E402

ARGS = ("--echo", "--admin", "127.0.0.1:0")
TOKEN_CONF = conf("token.lua", "return { admin_token = 's3cret', echo = true }\n")
# A handler that spends 25 ms of CPU before it answers. os.clock() is CPU
# time, which never runs ahead of the wall clock the histogram reads.
BUSY_LUA = conf("busy.lua", """
return {
    decode_json = false,
    on_message = function(conn, data)
        local stop = os.clock() + 0.025
        while os.clock() < stop do end
        conn:send(data)
    end,
}
""")


def test_metrics_move_with_traffic(srv):
    port = admin_port(srv)
    before = metrics(port)
    for name in ("roomcast_msgs_in_total", "roomcast_conns_total", "roomcast_bytes_out_total",
                 "roomcast_handler_seconds_bucket", "roomcast_closes_total",
                 "roomcast_refused_connections_total", "roomcast_conns_open"):
        check(name in before, "%s missing from /metrics" % name)
    with srv.connect() as c:
        mid = metrics(port)
        check(total(mid, "roomcast_conns_open") >= 1, "an open connection is counted")
        for i in range(5):
            c.send_frame(OP_TEXT, "hello %d" % i)
            c.expect_message(OP_TEXT, "hello %d" % i)
        c.finish(1000)
    after = metrics(port)
    eq(total(after, "roomcast_msgs_in_total") - total(before, "roomcast_msgs_in_total"), 5,
       "msgs_in delta")
    eq(total(after, "roomcast_msgs_out_total") - total(before, "roomcast_msgs_out_total"), 5,
       "msgs_out delta")
    check(total(after, "roomcast_bytes_in_total") > total(before, "roomcast_bytes_in_total"),
          "bytes_in grows")
    eq(total(after, "roomcast_upgrades_total") - total(before, "roomcast_upgrades_total"), 1,
       "upgrades delta")
    eq(total(after, "roomcast_closes_total", code="1000") -
       total(before, "roomcast_closes_total", code="1000"), 1, "closes{code=1000} delta")
    eq(total(after, "roomcast_handler_seconds_count") -
       total(before, "roomcast_handler_seconds_count"), 5, "handler histogram count delta")
    eq(total(after, "roomcast_handler_seconds_bucket", le="+Inf"),
       total(after, "roomcast_handler_seconds_count"), "+Inf bucket equals count")
    nw = int(os.environ.get("RC_WORKERS") or 0)
    if nw:
        eq(len(after["roomcast_conns_total"]), nw, "one conns_total series per worker")


@server("-s", BUSY_LUA, "--admin", "127.0.0.1:0")
def test_handler_time_measured(srv):
    """The histogram's clock (the TSC where the CPU has an invariant one)
    against the client's: each call took at least its 25 ms of CPU and at
    most the client's round trip."""
    port = admin_port(srv)
    before = metrics(port)
    n, rtt = 4, 0.0
    with srv.connect() as c:
        for i in range(n):
            t0 = time.monotonic()
            c.send_frame(OP_TEXT, "m%d" % i)
            c.expect_message(OP_TEXT, "m%d" % i, timeout=10)
            rtt += time.monotonic() - t0
        c.finish(1000)
    after = metrics(port)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    def bucket_delta(le):
        def at(m):
            return sum(v for k, v in m.get("roomcast_handler_seconds_bucket", {}).items()
                       if float(dict(k)["le"]) == le)
        return at(after) - at(before)

    eq(delta("roomcast_handler_seconds_count"), n, "every call observed")
    spent = delta("roomcast_handler_seconds_sum")
    check(n * 0.025 <= spent <= rtt * 1.01,
          "handler seconds %.6f: not within [%.3f, round trips %.6f]" % (spent, n * 0.025, rtt))
    eq(bucket_delta(0.01), 0, "no 25 ms call at or under 10 ms")
    eq(bucket_delta(float("inf")), n, "+Inf bucket")


def test_refusals_counted(srv):
    port = admin_port(srv)
    before = metrics(port)
    with srv.raw() as c:
        c.send(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        eq(c.read_response().status, 404, "plain GET elsewhere")
    # one refusal of each kind the handshake itself can tell apart
    bad = [
        (rctest.upgrade_request(method="POST"), 405, "method"),
        (rctest.upgrade_request(key="short"), 400, "key"),
        (rctest.upgrade_request(version="12"), 426, "version"),
        (rctest.upgrade_request(omit=("Host",)), 400, "host"),
        (rctest.upgrade_request(headers=[("Connection", "keep-alive")], omit=("Connection",)),
         400, "connection"),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "malformed"),
    ]
    for raw, status, _ in bad:
        with srv.raw() as c:
            c.send(raw)
            eq(c.read_response().status, status, "status for %r" % raw[:40])
    after = metrics(port)
    eq(total(after, "roomcast_handshake_refusals_total", status="404") -
       total(before, "roomcast_handshake_refusals_total", status="404"), 1, "404 refusal counted")
    eq(total(after, "roomcast_handshake_refusals_total", status="405") -
       total(before, "roomcast_handshake_refusals_total", status="405"), 1, "405 has its own series")

    def by_reason(m, r):
        return total(m, "roomcast_handshake_refusals_by_reason_total", reason=r)
    eq(by_reason(after, "not_found") - by_reason(before, "not_found"), 1, "reason not_found")
    for _, _, reason in bad:
        eq(by_reason(after, reason) - by_reason(before, reason), 1, "reason %s" % reason)
    eq(by_reason(after, "other") - by_reason(before, "other"), 0, "nothing unclassified")


def test_stats_json(srv):
    port = admin_port(srv)
    s = stats(port)
    eq(s["port"], srv.port, "stats port")
    check(s["uptime"] >= 0 and s["draining"] is False, "uptime/draining: %r" % s)
    eq(len(s["per_worker"]), s["workers"], "per-worker entries")
    for key in ("conns_total", "msgs_in_total", "queued_bytes", "rooms", "lua_errors_total"):
        check(key in s["totals"], "totals lacks %s" % key)
    check("generation" in s and "generation" in s["per_worker"][0], "script generation shown")
    with srv.connect() as c:
        c.send_frame(OP_TEXT, "x")
        c.expect_message(OP_TEXT, "x")
        s2 = stats(port)
        check(s2["totals"]["msgs_in_total"] > s["totals"]["msgs_in_total"], "stats move")
        c.finish()


def test_health_and_errors(srv):
    port = admin_port(srv)
    status, hdrs, body = get(port, "/health")
    eq(status, 200, "/health status")
    check('"ok"' in body, "/health body %r" % body)
    eq(get(port, "/nope")[0], 404, "unknown path")
    check(hdrs["content-type"].startswith("application/json"), "JSON content type")
    status, hdrs, _ = get(port, "/metrics")
    check(hdrs["content-type"].startswith("text/plain; version=0.0.4"), "exposition type")


@server("-c", TOKEN_CONF, "--admin", "127.0.0.1:0")
def test_bearer_token(srv):
    port = admin_port(srv)
    eq(get(port, "/metrics")[0], 401, "/metrics without a token")
    eq(get(port, "/stats", {"Authorization": "Bearer wrong"})[0], 401, "wrong token")
    eq(get(port, "/stats", {"Authorization": "Bearer s3cre"})[0], 401, "prefix of the token")
    eq(get(port, "/health")[0], 200, "/health needs no token")
    m = metrics(port, {"Authorization": "Bearer s3cret"})
    check("roomcast_conns_total" in m, "metrics with the token")


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
