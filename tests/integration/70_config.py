#!/usr/bin/python3
"""70_config - the Lua config file: `roomcast -t -c FILE` on good and broken
files (exit status, FILE:LINE in the message, the bad key named), both file
styles (returned table, globals), and CLI flags overriding the file."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import BIN, OP_BINARY, Server, check, eq, server  # noqa: E402

SRC = os.environ.get("RC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TMP = tempfile.mkdtemp(prefix="rc70-")


def conf(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def check_t(path):
    p = subprocess.run([BIN, "-t", "-c", path], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def test_shipped_configs_pass():
    for name in ("roomcast.conf.lua", "roomcast-dev.conf.lua"):
        rc, out = check_t(os.path.join(SRC, "etc", name))
        eq(rc, 0, "roomcast -t on etc/%s (%s)" % (name, out.strip()))
        check("OK" in out, "no OK line: %r" % out)


def test_syntax_error_has_line():
    path = conf("syntax.lua", "return {\n    port = 8080,\n    workers = 2\n    echo = true,\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for a syntax error")
    check("%s:4:" % path in out, "want %s:4: in %r" % (path, out))
    check(out.startswith("roomcast: "), "message starts with 'roomcast: ': %r" % out)


def test_bad_value_names_key_and_line():
    path = conf("value.lua", "-- comment\nreturn {\n    max_message = \"lots\",\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for a bad size")
    check("%s:3:" % path in out and "max_message" in out, "want line 3 and the key: %r" % out)
    path = conf("range.lua", "return {\n  port = 8080,\n\n  workers = 500,\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for workers out of range")
    check("%s:4:" % path in out and "workers" in out, "want line 4 and the key: %r" % out)


def test_unknown_key_and_nested_error():
    path = conf("typo.lua", "return {\n    prot = 8080,\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for an unknown key")
    check("prot" in out and ":2:" in out, "unknown key named with its line: %r" % out)
    path = conf("plug.lua", "return {\n  plugins = {\n    { name = 'a' },\n"
                "    { path = 'x.lua' },\n  },\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for a plugin without a name")
    check("plugin 2" in out and "name" in out, "names the plugin: %r" % out)


def test_runtime_error_and_missing_file():
    path = conf("runtime.lua", "local x = nil\nlocal y = x.field\nreturn {}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for a runtime error")
    check("%s:2:" % path in out, "runtime error line: %r" % out)
    rc, out = check_t(os.path.join(TMP, "does-not-exist.lua"))
    eq(rc, 1, "exit status for a missing file")
    check("cannot read" in out, "missing file explained: %r" % out)


def test_globals_style_and_tables():
    path = conf("globals.lua", "port = 9000\nworkers = 1\nscript_config = { motd = 'hi', n = {1,2} }\n"
                "routes = { { pattern = 'game:*', script = 'g.lua' } }\n"
                "allowed_origins = { 'https://a.example' }\n")
    rc, out = check_t(path)
    eq(rc, 0, "globals-style config (%s)" % out.strip())
    path = conf("func.lua", "return {\n  script_config = {\n    f = print,\n  },\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "a function in script_config is refused")
    check("function" in out, "says why: %r" % out)


def test_tls_files_checked():
    path = conf("tls.lua", "return {\n  tls_cert = '/nonexistent/cert.pem',\n"
                "  tls_key = '/nonexistent/key.pem',\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "-t loads the certificate")
    check("tls_cert" in out, "names tls_cert: %r" % out)


OVERRIDE = conf("override.lua", "return {\n  bind = '10.255.255.1',\n  port = 1,\n"
                "  max_message = 100,\n  admin = false,\n  echo = true,\n}\n")


@server("-c", OVERRIDE, "--max-message", "4K")
def test_cli_overrides_file(srv):
    # -b 127.0.0.1 -p 0 (rctest) beat bind/port of the file; --max-message beats
    # max_message = 100; the file's echo = true is in force.
    with srv.connect() as c:
        c.send_frame(OP_BINARY, b"x" * 1000)
        c.expect_message(OP_BINARY, b"x" * 1000)
        c.send_frame(OP_BINARY, b"y" * 5000)
        c.expect_fail(1009)


def plain(fn):
    def run(srv):
        fn()
    run.__name__ = fn.__name__
    return run


if __name__ == "__main__":
    ns = {}
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            ns[name] = fn if getattr(fn, "rc_server", None) else plain(fn)
    rctest.main(ns, default_args=("--echo", "--admin", "off"))
