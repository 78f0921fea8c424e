#!/usr/bin/python3
"""82_static - static files on the main port (core/app/static.c, --static
DIR): the demo page, Content-Type/Length, ETag and If-None-Match, HEAD,
and the refusals: traversal in every spelling, encoded dots and slashes,
NUL, dot files, a symlink out of the directory, directories, the size cap,
other methods. Without static_dir the server answers exactly as before.
WebSocket upgrades keep working on / and /ws."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, server  # noqa: E402
from rcadmin import conf  # noqa: E402

ROOT = rctest.scratch_dir("rc-static-")
WWW = os.path.join(ROOT, "www")
INDEX = b"<!doctype html><title>t</title><p>index</p>\n"
JS = b"export const x = 1;\n"
SECRET = b"the secret outside the root\n"


def setup():
    os.makedirs(os.path.join(WWW, "sub", "deeper"), exist_ok=True)
    os.makedirs(os.path.join(WWW, "noindex"), exist_ok=True)
    with open(os.path.join(WWW, "index.html"), "wb") as f:
        f.write(INDEX)
    with open(os.path.join(WWW, "app.js"), "wb") as f:
        f.write(JS)
    with open(os.path.join(WWW, "sub", "index.html"), "wb") as f:
        f.write(b"sub index\n")
    with open(os.path.join(WWW, "sub", "deeper", "a b.txt"), "wb") as f:
        f.write(b"spaced\n")
    with open(os.path.join(WWW, ".hidden"), "wb") as f:
        f.write(b"dot file\n")
    with open(os.path.join(WWW, "big.bin"), "wb") as f:
        f.write(b"\0" * 5000)
    with open(os.path.join(ROOT, "secret.txt"), "wb") as f:
        f.write(SECRET)
    os.symlink(os.path.join(ROOT, "secret.txt"), os.path.join(WWW, "out.txt"))
    os.symlink(ROOT, os.path.join(WWW, "outdir"))
    os.symlink("index.html", os.path.join(WWW, "inside.html"))


setup()
CONF = conf("static.lua", "return { static_dir = %r, static_max_file = 4096 }\n" % WWW)
ARGS = ("--echo", "-c", CONF)


def raw_request(srv, data):
    """Sends bytes, reads until the server closes: (status, headers, body)."""
    s = socket.create_connection((srv.host, srv.port), timeout=rctest.tmo(5))
    try:
        s.sendall(data if isinstance(data, bytes) else data.encode("latin-1"))
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def get(srv, path, method="GET", extra=""):
    return raw_request(srv, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, path, extra))


def test_index_and_types(srv):
    st, h, body = get(srv, "/")
    eq(st, 200, "GET /")
    eq(body, INDEX, "index.html")
    eq(h["content-type"], "text/html; charset=utf-8", "type")
    eq(int(h["content-length"]), len(INDEX), "length")
    check(h.get("etag", "").startswith('"'), "strong ETag %r" % h.get("etag"))
    eq(h.get("x-content-type-options"), "nosniff", "nosniff")
    eq(get(srv, "/index.html")[2], INDEX, "by name")
    st, h, body = get(srv, "/app.js?v=3")
    eq((st, body), (200, JS), "query ignored")
    eq(h["content-type"], "text/javascript; charset=utf-8", "js type")
    eq(get(srv, "/sub/")[2], b"sub index\n", "a directory's index")
    eq(get(srv, "//sub//./")[0], 404, "a '.' segment is refused, not resolved")
    eq(get(srv, "//sub//")[2], b"sub index\n", "empty segments collapse")
    eq(get(srv, "/sub/deeper/a%20b.txt")[2], b"spaced\n", "percent-decoded name")
    eq(get(srv, "/inside.html")[2], INDEX, "a symlink inside the root")
    st, h, _ = get(srv, "/big.bin")
    eq(st, 403, "over static_max_file")


def test_etag_and_head(srv):
    st, h, _ = get(srv, "/")
    etag = h["etag"]
    st, h2, body = get(srv, "/", extra="If-None-Match: %s\r\n" % etag)
    eq((st, body), (304, b""), "If-None-Match")
    eq(h2["etag"], etag, "304 repeats the ETag")
    eq(get(srv, "/", extra='If-None-Match: "nope", W/%s\r\n' % etag)[0], 304, "weak, in a list")
    eq(get(srv, "/", extra="If-None-Match: *\r\n")[0], 304, "*")
    eq(get(srv, "/", extra='If-None-Match: "other"\r\n')[0], 200, "another tag")
    st, h, body = get(srv, "/", method="HEAD")
    eq(st, 200, "HEAD")
    eq(body, b"", "HEAD has no body")
    eq(int(h["content-length"]), len(INDEX), "HEAD length")
    eq(h["etag"], etag, "HEAD etag")
    st, h, body = get(srv, "/missing", method="HEAD")
    eq((st, body), (404, b""), "HEAD 404 has no body")


TRAVERSAL = [
    "/../secret.txt", "/..", "/../", "/sub/../../secret.txt", "/sub/../index.html",
    "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/.%2e/secret.txt", "/%2e./secret.txt",
    "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%5csecret.txt", "/..\\secret.txt", "/sub\\..\\..\\secret.txt",
    "/%252e%252e/secret.txt", "/./index.html", "/%2e/index.html",
    "/index.html%00", "/index.html%00.js", "/%00", "/a%0ab",
    "/.hidden", "/%2ehidden", "/sub/.%2e/index.html",
    "/out.txt", "/outdir/secret.txt", "/outdir/", "/noindex/", "/noindex", "/sub",
    "/%", "/%g1", "/%2", "/missing.html",
]


def test_traversal_refused(srv):
    for path in TRAVERSAL:
        st, h, body = get(srv, path)
        eq(st, 404, "GET %s" % path)
        check(SECRET not in body and b"dot file" not in body, "leak through %s" % path)
    # NUL as a raw byte: the HTTP parser refuses it before any file lookup
    st, _, body = raw_request(srv, b"GET /index.html\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
    check(st in (400, 404), "raw NUL: %d" % st)
    # an absolute-form or empty target never maps to a file
    eq(raw_request(srv, b"GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")[0] in
       (400, 404, 426), True, "absolute form")


def test_methods(srv):
    st, h, _ = get(srv, "/index.html", method="POST", extra="Content-Length: 0\r\n")
    eq(st, 405, "POST")
    check("GET" in h.get("allow", ""), "Allow")
    eq(get(srv, "/index.html", method="DELETE")[0], 405, "DELETE")
    eq(get(srv, "/ws")[0], 426, "a plain GET of /ws still asks for an upgrade")


def test_websocket_still_works(srv):
    for path in ("/", "/ws"):
        c = srv.connect(path)
        c.send_frame(rctest.OP_TEXT, "echo me")
        c.expect_message(rctest.OP_TEXT, "echo me")
        c.finish(1000)


@server("--echo")
def test_off_answers_as_before(srv):
    st, h, body = get(srv, "/")
    eq(st, 426, "GET / without static_dir")
    eq(h.get("upgrade"), "websocket", "426 names the protocol")
    eq(get(srv, "/index.html")[0], 404, "no files without static_dir")
    eq(get(srv, "/", method="HEAD")[0], 405, "HEAD without static_dir")


def _refuses_file_as_dir():
    r = subprocess.run([rctest.BIN, "-p", "0", "--echo", "--admin", "off", "--static",
                        os.path.join(WWW, "app.js")], capture_output=True, timeout=10)
    eq(r.returncode, 1, "exit status for a file as static_dir")
    check(b"not a directory" in r.stderr, "message: %r" % r.stderr)


def test_static_dir_is_checked(srv):
    _refuses_file_as_dir()


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
