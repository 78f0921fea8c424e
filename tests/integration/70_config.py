#!/usr/bin/python3
"""70_config - the Lua config file: `roomcast -t -c FILE` on good and broken
files (exit status, FILE:LINE in the message, the bad key named), both file
styles (returned table, globals), and CLI flags overriding the file."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import BIN, OP_BINARY, check, eq, server  # noqa: E402

SRC = os.environ.get("RC_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TMP = rctest.scratch_dir("rc70-")


def conf(name, text):
    return rctest.write_in(TMP, name, text)


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


def test_compression_table_checked():
    ok = conf("pmd-ok.lua", "return { compression = { enabled = true, threshold = 0, level = 9,"
              " window_bits = 8, mem_level = 1 } }\n")
    rc, out = check_t(ok)
    eq(rc, 0, "a valid compression table (%s)" % out.strip())
    rc, out = check_t(conf("pmd-off.lua", "return { compression = { enabled = false } }\n"))
    eq(rc, 0, "compression.enabled = false (%s)" % out.strip())
    for body, key in (("window_bits = 16", "window_bits"), ("window_bits = 7", "window_bits"),
                      ("level = 10", "level"), ("mem_level = 0", "mem_level"),
                      ("threshold = -1", "threshold"), ("enabled = 1", "enabled"),
                      ("windowbits = 12", "windowbits")):
        path = conf("pmd-bad.lua", "return {\n  compression = {\n    %s,\n  },\n}\n" % body)
        rc, out = check_t(path)
        eq(rc, 1, "exit status for compression.%s" % body)
        check(key in out, "want the key %r in %r" % (key, out))
    rc, out = check_t(conf("pmd-type.lua", "return { compression = 1 }\n"))
    eq(rc, 1, "compression = 1")
    check("compression" in out, "want the key in %r" % out)


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
    conf("g.lua", "return {}\n")  # the route's script, next to the file
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


def test_relative_paths_and_syntax():
    """A relative script path starts from the config file's directory, then the
    data directory beside the Lua runtime (the checkout here); -t compiles the
    scripts and names every place it looked for a missing one."""
    sub = os.path.join(TMP, "sub")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "mine.lua"), "w") as f:
        f.write("return {}\n")
    with open(os.path.join(sub, "broken.lua"), "w") as f:
        f.write("return {\n  on_message = function(\n}\n")
    rc, out = check_t(conf("sub/rel.lua", "return { script = 'mine.lua' }\n"))
    eq(rc, 0, "script next to the config (%s)" % out.strip())
    rc, out = check_t(conf("sub/data.lua", "return { script = 'scripts/chat.lua',\n"
                           "  plugins = { { name = 'ratelimit' } } }\n"))
    eq(rc, 0, "scripts/chat.lua and plugin by name from the data directory (%s)" % out.strip())
    rc, out = check_t(conf("sub/none.lua", "return { script = 'nowhere.lua' }\n"))
    eq(rc, 1, "missing script")
    check(os.path.join(sub, "nowhere.lua") in out and os.path.join(SRC, "nowhere.lua") in out,
          "names both places it looked: %r" % out)
    rc, out = check_t(conf("sub/bad.lua", "return { script = 'broken.lua' }\n"))
    eq(rc, 1, "a script with a syntax error fails -t")
    check(os.path.join(sub, "broken.lua") + ":3:" in out, "FILE:LINE of the error: %r" % out)
    rc, out = check_t(conf("sub/luadir.lua", "return { script = 'mine.lua', lua_dir = '.' }\n"))
    eq(rc, 1, "lua_dir without roomcast/init.lua")
    check("lua_dir %s/. has no roomcast/init.lua" % sub in out, "says why: %r" % out)
    p = subprocess.run([BIN, "-t", "-c", conf("sub/flag.lua", "return { script = 'mine.lua', "
                                              "lua_dir = '/nonexistent' }\n"),
                        "--lua-dir", os.path.join(SRC, "lua")],
                       capture_output=True, text=True, timeout=20)
    eq(p.returncode, 0, "--lua-dir beats the file's lua_dir (%s)" % (p.stdout + p.stderr))


def test_tls_files_relative_to_the_config():
    """tls_cert/tls_key given relative in the file start from the file's directory."""
    from rcadmin import make_cert
    cert, key = make_cert()
    tdir = os.path.join(TMP, "tlsdir")
    os.makedirs(tdir, exist_ok=True)
    shutil.copy(cert, os.path.join(tdir, "c.pem"))
    shutil.copy(key, os.path.join(tdir, "k.pem"))
    path = conf("tlsdir/rel.lua", "return { echo = true, tls_cert = 'c.pem', tls_key = 'k.pem' }\n")
    p = subprocess.run([BIN, "-t", "-c", path], capture_output=True, text=True, timeout=20,
                       cwd="/")
    eq(p.returncode, 0, "relative tls files next to the config (%s)" % (p.stdout + p.stderr))
    os.unlink(os.path.join(tdir, "k.pem"))
    p = subprocess.run([BIN, "-t", "-c", path], capture_output=True, text=True, timeout=20,
                       cwd="/")
    eq(p.returncode, 1, "a missing key fails -t")
    check(os.path.join(tdir, "k.pem") in p.stdout + p.stderr,
          "the error names the resolved path: %r" % (p.stdout + p.stderr))


def test_version():
    p = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=20)
    eq(p.returncode, 0, "--version exit status")
    lines = p.stdout.splitlines()
    check(lines and lines[0].startswith("roomcast "), "first line: %r" % p.stdout)
    for lib in ("LuaJIT 2.", "libev 4.", "OpenSSL 3.", "zlib 1."):
        check(any(l.strip().startswith(lib) for l in lines), "%s line in %r" % (lib, p.stdout))
    check("Lua runtime: %s" % os.path.join(os.path.realpath(SRC), "lua") in p.stdout,
          "the build-tree binary uses its checkout's runtime: %r" % p.stdout)
    # Built from a git checkout: the commit it was built from (which may be
    # behind HEAD when a commit came after the build), "-dirty" for local edits.
    if subprocess.run(["git", "-C", SRC, "rev-parse"], capture_output=True).returncode == 0:
        m = re.search(r"\(git ([0-9a-f]{12})(-dirty)?\)$", lines[0])
        check(m, "commit in %r" % lines[0])
        g = subprocess.run(["git", "-C", SRC, "cat-file", "-e", m.group(1) + "^{commit}"],
                           capture_output=True)
        eq(g.returncode, 0, "%s is a commit of this checkout" % m.group(1))
    eq(subprocess.run([BIN, "-V"], capture_output=True, text=True, timeout=20).stdout,
       p.stdout, "-V is --version")


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


def tick_line(srv):
    """The start-up line that names the tick clock (one, at INFO)."""
    lines = [l for l in srv.log() if "tick clock: " in l]
    eq(len(lines), 1, "'tick clock: ' lines in the log")
    check(" INFO " in lines[0], "logged at info: %r" % lines[0])
    return lines[0]


CLOCK = conf("clock.lua", "return {\n  clock = 'monotonic',\n  echo = true,\n  admin = false,\n}\n")


@server("-c", CLOCK)
def test_clock_monotonic_forced(srv):
    # clock = "monotonic" in the file: the handler timings read clock_gettime,
    # and the start-up log says so and why; the server serves as usual.
    line = tick_line(srv)
    check('tick clock: CLOCK_MONOTONIC (forced: clock = "monotonic")' in line, line)
    with srv.connect() as c:
        c.send_frame(OP_BINARY, b"t")
        c.expect_message(OP_BINARY, b"t")


@server("--echo", "--admin", "off")
def test_clock_auto_logs_its_choice(srv):
    line = tick_line(srv)
    check("tick clock: invariant TSC, " in line or "tick clock: CLOCK_MONOTONIC (" in line, line)
    check("forced" not in line, "auto is not forced: %r" % line)


def test_clock_bad_value_refused():
    path = conf("clock-bad.lua", "return {\n  clock = 'tsc',\n}\n")
    rc, out = check_t(path)
    eq(rc, 1, "exit status for clock = 'tsc'")
    check("%s:2: 'clock' must be one of auto|monotonic" % path in out, out)
    p = subprocess.run([BIN, "--clock", "fast", "-t"], capture_output=True, text=True, timeout=20)
    eq(p.returncode, 2, "exit status for --clock fast (a usage error)")
    check("invalid value 'fast' for --clock (auto|monotonic)" in p.stderr, p.stderr)


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
