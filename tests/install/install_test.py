#!/usr/bin/python3
"""install_test - `make install DESTDIR=...` gives a server that runs without
its source tree.

How the source tree is hidden, honestly: the checkout is copied (the files a
build needs, no .git), the copy is built and installed with `make install
PREFIX=<a prefix that does not exist> DESTDIR=<stage>`, and then the copy,
build directory included, is deleted. Every path compiled into that binary
(its source tree, its build directory, its prefix) now names nothing, and the
binary is checked not to contain the real checkout's path at all. What it
serves can only come from the stage. Then, run from an unrelated working
directory:

  - -V reports the staged runtime (found next to the binary);
  - -t passes on the installed config and on the example config;
  - it serves scripts/chat.lua from the staged share directory and answers
    the seed protocol (join, broadcast) between two clients;
  - the staged tree moved elsewhere still works (relocatable);
  - the binary alone fails with an error naming every place it looked, and
    works again with --lua-dir.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import rctest  # noqa: E402
from rclua import seed_chat, wait_log  # noqa: E402
from rctest import Failure, check, eq  # noqa: E402

SRC = os.path.realpath(os.environ.get("RC_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
COPY = ("CMakeLists.txt", "Makefile", "README.md", "cmake", "core", "lua", "scripts", "plugins",
        "etc", "www")

results = []


def step(name):
    def wrap(fn):
        try:
            fn()
            print("ok   %s" % name, flush=True)
            results.append(True)
        except Failure as e:
            print("FAIL %s: %s" % (name, e), flush=True)
            results.append(False)
        return fn
    return wrap


def run(cmd, cwd, timeout=60, **kw):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


tmp = tempfile.mkdtemp(prefix="rcinstall-")
copy = os.path.join(tmp, "src")
stage = os.path.join(tmp, "stage")
elsewhere = os.path.join(tmp, "elsewhere")
os.makedirs(elsewhere)
# A prefix nobody has: step 2 of the search (the compiled-in prefix) finds nothing.
prefix = "/nonexistent/rcinstall-%d" % os.getpid()
os.makedirs(copy)
for name in COPY:
    p = os.path.join(SRC, name)
    if os.path.isdir(p):
        shutil.copytree(p, os.path.join(copy, name))
    elif os.path.exists(p):
        shutil.copy2(p, os.path.join(copy, name))
env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
env["RC_SOURCE_DIR"] = "/nonexistent"  # nothing below may lean on the real checkout
build = run(["make", "install", "PREFIX=" + prefix, "DESTDIR=" + stage, "JOBS=2", "BUILD=build",
             "CMAKE_ARGS=-DRC_BUILD_TESTS=OFF -DRC_BENCH=OFF"],
            cwd=copy, timeout=900, env=env)
if build.returncode != 0:
    print("FAIL make install in a copy:\n%s\n%s" % (build.stdout[-3000:], build.stderr[-3000:]))
    sys.exit(1)
print("ok   make install PREFIX=%s DESTDIR=<stage> (built in a copy)" % prefix, flush=True)
# A second make install keeps the operator's edited config.
staged_conf = os.path.join(stage + prefix, "etc", "roomcast", "roomcast.conf.lua")
with open(staged_conf, "a") as f:
    f.write("-- edited\n")
again = run(["make", "install", "PREFIX=" + prefix, "DESTDIR=" + stage, "JOBS=2", "BUILD=build",
             "CMAKE_ARGS=-DRC_BUILD_TESTS=OFF -DRC_BENCH=OFF"], cwd=copy, timeout=900, env=env)
if again.returncode != 0 or not open(staged_conf).read().endswith("-- edited\n"):
    print("FAIL a second make install replaced the edited config (or failed):\n%s" %
          again.stdout[-2000:])
    sys.exit(1)
print("ok   a second make install keeps the edited config", flush=True)
shutil.rmtree(copy)  # the copy's source and build directory are gone from here on

root = stage + prefix
BIN = os.path.join(root, "bin", "roomcast")
SHARE = os.path.join(root, "share", "roomcast")
CONF = os.path.join(root, "etc", "roomcast", "roomcast.conf.lua")
EXAMPLE = os.path.join(root, "share", "doc", "roomcast", "examples", "roomcast.conf.lua")


@step("the layout: bin/, share/roomcast/{lua,scripts,plugins}, docs, examples, etc/")
def _layout():
    for p in (BIN, CONF, EXAMPLE,
              os.path.join(SHARE, "lua", "roomcast", "init.lua"),
              os.path.join(SHARE, "scripts", "chat.lua"),
              os.path.join(SHARE, "plugins", "ratelimit.lua"),
              os.path.join(root, "share", "doc", "roomcast", "README.md"),
              os.path.join(root, "share", "doc", "roomcast", "examples", "roomcast.service"),
              os.path.join(root, "share", "doc", "roomcast", "examples", "logrotate-roomcast")):
        check(os.path.isfile(p), "%s not installed" % p)
    unit = open(os.path.join(root, "share", "doc", "roomcast", "examples",
                             "roomcast.service")).read()
    check("ExecStart=%s/bin/roomcast -c %s/etc/roomcast/roomcast.conf.lua" % (prefix, prefix)
          in unit, "the unit names the prefix's binary and config")
    if os.path.isdir(os.path.join(SRC, "www")):
        check(os.path.isdir(os.path.join(SHARE, "www")), "www/ installed")


@step("the binary holds no path of the real checkout")
def _no_checkout_path():
    data = open(BIN, "rb").read()
    check(SRC.encode() not in data, "%s is compiled into the installed binary" % SRC)


@step("-V from another directory: the staged runtime, found next to the binary")
def _version():
    p = run([BIN, "-V"], cwd=elsewhere)
    eq(p.returncode, 0, "exit status (%s)" % p.stderr)
    check("Lua runtime: %s" % os.path.join(SHARE, "lua") in p.stdout, "runtime in %r" % p.stdout)
    for lib in ("LuaJIT", "libev", "OpenSSL"):
        check(lib in p.stdout, "%s version in %r" % (lib, p.stdout))


@step("-t passes on the installed config and the example config")
def _check_configs():
    for conf in (CONF, EXAMPLE):
        p = run([BIN, "-t", "-c", conf], cwd=elsewhere)
        eq(p.returncode, 0, "roomcast -t -c %s (%s)" % (conf, (p.stdout + p.stderr).strip()))
        check("OK" in p.stdout, "OK line: %r" % p.stdout)


def serve_chat(binary, conf, share):
    """Starts binary -c conf from `elsewhere`, runs the seed protocol, stops."""
    rctest.BIN = binary
    old = os.getcwd()
    os.chdir(elsewhere)
    try:
        srv = rctest.Server(("-c", conf, "-w", "2", "--admin", "off")).start()
    finally:
        os.chdir(old)
    try:
        wait_log(srv, "Lua runtime: ")
        log = "\n".join(srv.log())
        check(os.path.join(share, "scripts", "chat.lua") in log,
              "serves the installed chat.lua: %s" % log)
        check("Lua runtime: %s" % os.path.join(share, "lua") in log, "runtime logged: %s" % log)
        seed_chat(srv)
    finally:
        problems = srv.stop()
    check(not problems, "server stop: %s" % problems)


@step("serves scripts/chat.lua from the share directory: join + broadcast")
def _serve():
    serve_chat(BIN, CONF, SHARE)


moved = os.path.join(tmp, "moved")


@step("the staged tree moved elsewhere still runs (relocatable)")
def _relocate():
    shutil.move(root, moved)
    try:
        share = os.path.join(moved, "share", "roomcast")
        p = run([os.path.join(moved, "bin", "roomcast"), "-V"], cwd=elsewhere)
        check("Lua runtime: %s" % os.path.join(share, "lua") in p.stdout, p.stdout)
        serve_chat(os.path.join(moved, "bin", "roomcast"),
                   os.path.join(moved, "etc", "roomcast", "roomcast.conf.lua"), share)
    finally:
        shutil.move(moved, root)


@step("the binary alone: an error naming every place it looked; --lua-dir fixes it")
def _alone():
    lonely = os.path.join(tmp, "lonely")
    os.makedirs(lonely)
    b = shutil.copy2(BIN, os.path.join(lonely, "roomcast"))
    p = run([b, "-t", "-s", "scripts/chat.lua"], cwd=elsewhere)
    eq(p.returncode, 1, "exit status without a runtime (%s)" % p.stderr)
    err = p.stderr
    check("cannot find the Lua runtime" in err, err)
    for place in (os.path.join(lonely, "../share/roomcast/lua"),
                  prefix + "/share/roomcast/lua", "/src/lua", "--lua-dir"):
        check(place in err, "names %s: %r" % (place, err))
    p = run([b, "-t", "-s", "scripts/chat.lua", "--lua-dir", os.path.join(SHARE, "lua")],
            cwd=elsewhere)
    eq(p.returncode, 0, "--lua-dir (%s)" % p.stderr)


shutil.rmtree(tmp, ignore_errors=True)
print("%d passed, %d failed" % (results.count(True), results.count(False)))
sys.exit(0 if all(results) else 1)
