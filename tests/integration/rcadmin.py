"""rcadmin - helpers for the operations tests (7x_*.py): the admin listener's
port from the log, a tiny HTTP GET, /metrics parsed with prometheus_client's
own text parser, throwaway config files and TLS certificates."""
import http.client
import json
import os
import re
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from rctest import Failure, scratch_dir, tmo, write_in

ADMIN_RE = re.compile(r"admin listening on http://(\[[^\]]+\]|[^\s:/]+):(\d+)/")
WSS_RE = re.compile(r"listening on wss://(\[[^\]]+\]|[^\s:/]+):(\d+)/")
TMP = scratch_dir("rc7x-")


def log_port(srv, regex, what, timeout=5.0):
    deadline = time.monotonic() + tmo(timeout)
    while time.monotonic() < deadline:
        for line in srv.log():
            m = regex.search(line)
            if m:
                return int(m.group(2))
        time.sleep(0.02)
    raise Failure("no %s line in the log:\n%s" % (what, srv.log_tail()))


def admin_port(srv):
    return log_port(srv, ADMIN_RE, "'admin listening on'")


def wss_port(srv):
    return log_port(srv, WSS_RE, "'listening on wss://'")


def get(port, path, headers=None, timeout=5.0):
    """GET http://127.0.0.1:port/path -> (status, headers dict, body str)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=tmo(timeout))
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read().decode("utf-8")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def stats(port, headers=None):
    status, _, body = get(port, "/stats", headers)
    if status != 200:
        raise Failure("/stats: HTTP %d %r" % (status, body))
    return json.loads(body)


def metrics(port, headers=None):
    """/metrics as {sample name: {frozenset(labels.items()): value}}, parsed by
    prometheus_client (a format error raises)."""
    status, hdrs, body = get(port, "/metrics", headers)
    if status != 200:
        raise Failure("/metrics: HTTP %d %r" % (status, body))
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def total(m, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for k, v in m.get(name, {}).items() if want <= set(k))


def wait_metric(port, name, want, timeout=5.0, **labels):
    """Polls /metrics until total(name, labels) == want; the server frees a
    connection a moment after the client's side has closed, so a test that
    counts live connections waits for the count instead of sleeping."""
    deadline = time.monotonic() + tmo(timeout)
    while True:
        got = total(metrics(port), name, **labels)
        if got == want:
            return
        if time.monotonic() > deadline:
            raise Failure("%s stayed %r, want %r" % (name, got, want))
        time.sleep(0.02)


def conf(name, text):
    return write_in(TMP, name, text)


def make_cert():
    """A throwaway self-signed certificate for 127.0.0.1/localhost: (cert, key)."""
    cert, key = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key
