#!/usr/bin/python3
"""peer_detect_test - a benchmark peer whose library appears after the build
directory was configured is found and built on the next run.

pkg-config is pointed at a scratch directory (PKG_CONFIG_LIBDIR) that holds a
link to every .pc file of the system except libwebsockets': to pkg-config,
libwebsockets-dev is not installed. Nothing is uninstalled.

  1. a bench build directory is configured and rcbench built with the
     library hidden, and `run.sh quick` runs with only the lws peer: the lws
     column of the table says why it is missing, the summary line names the
     command that fixes it, and no detection result lands in CMakeCache.txt;
  2. libwebsockets.pc "appears" (its link is added), and peers/build.sh on
     the same build directory finds it, builds peer_lws, and the peer answers
     a WebSocket echo.

Step 2 needs libwebsockets-dev on the machine (CI installs it): without it
the test reports step 1 and exits 77 (skipped).
"""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.realpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from rctest import OP_TEXT, Conn, Failure, check, eq  # noqa: E402

tmp = tempfile.mkdtemp(prefix="rcpeers-")
pc = os.path.join(tmp, "pkgconfig")
build = os.path.join(tmp, "build")
out = os.path.join(tmp, "bench-out")
os.makedirs(pc)

sysdirs = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"],
                         capture_output=True, text=True).stdout.strip().split(":")
lws_pc = None
for d in sysdirs:
    for f in glob.glob(os.path.join(d, "*.pc")):
        name = os.path.basename(f)
        if name == "libwebsockets.pc":
            lws_pc = lws_pc or f
        elif not os.path.exists(os.path.join(pc, name)):
            os.symlink(f, os.path.join(pc, name))

env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
env.update(PKG_CONFIG_LIBDIR=pc, PKG_CONFIG_PATH="", RC_BENCH_BUILD=build, RC_BENCH_OUT=out,
           RC_BENCH_SERVERS="lws", RC_BENCH_DEPS_DONE="1")


def run(cmd, timeout=600):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def status():
    with open(os.path.join(build, "bench-peers", "status")) as f:
        return {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in f if l.strip()}


rc = 0
try:
    p = run(["pkg-config", "--exists", "libwebsockets"])
    eq(p.returncode, 1, "libwebsockets hidden from pkg-config")
    p = run(["cmake", "-S", SRC, "-B", build, "-DRC_BUILD_TESTS=OFF", "-DRC_BENCH=ON"])
    eq(p.returncode, 0, "configure (%s)" % p.stderr[-500:])
    p = run(["bash", os.path.join(HERE, "run.sh"), "quick"])
    eq(p.returncode, 0, "run.sh quick (%s)" % p.stderr[-2000:])
    st = status()
    eq(st["lws"][0], "missing", "lws status before")
    check("libwebsockets-dev not installed" in st["lws"][1], "why: %r" % st["lws"])
    check(not os.path.exists(os.path.join(build, "bench-peers", "peer_lws")), "no peer_lws")
    md = open(os.path.join(out, "results.md")).read()
    check("missing: libwebsockets-dev not installed" in md, "the lws column says why:\n" + md)
    check("make bench-deps" in md, "results.md names the fix:\n" + md)
    check("missing peers: lws" in p.stderr and "to fix:" in p.stderr and
          "make bench-deps" in p.stderr.splitlines()[-1],
          "the summary line names the fix: %r" % p.stderr.splitlines()[-1:])
    cache = open(os.path.join(build, "CMakeCache.txt")).read()
    check("LWS" not in cache and "websockets" not in cache, "no lws detection cached by CMake")
    print("ok   hidden: lws missing, its column and the summary say why and how to fix")

    if lws_pc is None:
        print("skipped: libwebsockets-dev is not installed here, so it cannot appear "
              "(make bench-deps)")
        rc = 77
    else:
        os.symlink(lws_pc, os.path.join(pc, "libwebsockets.pc"))  # it appears
        p = run(["bash", os.path.join(HERE, "peers", "build.sh"), build])
        eq(p.returncode, 0, "peers/build.sh")
        st = status()
        eq(st["lws"][0], "ok", "lws status after it appeared (%r)" % st["lws"])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        peer = subprocess.Popen([st["lws"][1], "echo", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    c = Conn("127.0.0.1", port)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise Failure("peer_lws does not listen on %d" % port)
                    time.sleep(0.05)
            c.upgrade("/")
            c.send_frame(OP_TEXT, b"hello lws")
            c.expect_message(OP_TEXT, b"hello lws")
            c.close()
        finally:
            peer.kill()
            peer.wait()
        print("ok   appeared: the same build directory builds peer_lws, and it echoes")
except Failure as e:
    print("FAIL %s" % e)
    rc = 1
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(rc)
