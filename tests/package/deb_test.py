#!/usr/bin/python3
"""deb_test - the Debian package on the machine it runs on, as root (CI).

  make deb, and a second build of it with a higher version (the upgrade);
  dpkg -i: the roomcast system user, /var/lib/roomcast, the files under /usr,
    /etc/roomcast/roomcast.conf.lua a conffile, the unit's paths installed,
    the unit neither enabled nor started;
  /usr/bin/roomcast -t -c /etc/roomcast/roomcast.conf.lua;
  the server started as the roomcast user without systemd: join + broadcast;
  dpkg -i of the newer build over it keeps an edited conffile and the data
    in /var/lib/roomcast;
  dpkg -r stops the server and leaves no process behind; --purge clears up.

Refuses to run (exit 77, "skipped") unless root, and when a roomcast package
is already installed. Leaves the machine as it found it: the package purged,
and the roomcast user and group removed when this test created them.

Usage: deb_test.py [BUILD_DIR]   (default build-deb; `make test-package`)
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.realpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from rclua import seed_chat  # noqa: E402
from rctest import Failure, check, eq  # noqa: E402

CONF = "/etc/roomcast/roomcast.conf.lua"
STATE = "/var/lib/roomcast"
UNIT = "/lib/systemd/system/roomcast.service"


def sh(*cmd, ok=True, timeout=300, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if ok and p.returncode != 0:
        raise Failure("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout[-2000:],
                                              p.stderr[-2000:]))
    return p


def installed():
    p = sh("dpkg-query", "-W", "-f=${Status} ${Version}", "roomcast", ok=False)
    return p.stdout if p.returncode == 0 and "ok installed" in p.stdout else None


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def roomcast_pids():
    """pids of processes named roomcast or running as the roomcast user."""
    uid = pwd.getpwnam("roomcast").pw_uid if user_exists("roomcast") else None
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = f.read()
        except OSError:
            continue
        name = re.search(r"^Name:\s*(\S+)", st, re.M).group(1)
        puid = int(re.search(r"^Uid:\s*(\d+)", st, re.M).group(1))
        exe = ""
        try:
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            pass
        if (uid is not None and puid == uid) or exe.startswith("/usr/bin/roomcast"):
            pids.append((int(d), name, puid, exe))
    return pids


class Started:
    """/usr/bin/roomcast run as the roomcast user through setpriv (no systemd)."""

    def __init__(self):
        cmd = ["setpriv", "--reuid=roomcast", "--regid=roomcast", "--init-groups",
               "/usr/bin/roomcast", "-c", CONF, "-b", "127.0.0.1", "-p", "0", "-w", "2",
               "--admin", "off"]
        self.proc = subprocess.Popen(cmd, cwd=STATE, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines = []
        self.ready = threading.Event()
        self.host, self.port = "127.0.0.1", None
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(15):
            self.proc.kill()
            raise Failure("no listening line: %s" % "\n".join(self.lines))

    def _read(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            m = re.search(r"listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m and not self.ready.is_set():
                self.port = int(m.group(1))
                self.ready.set()

    def connect(self, path="/", headers=None, **kw):
        from rctest import Conn
        c = Conn(self.host, self.port)
        c.upgrade(path, headers=headers, **kw)
        return c




def main():
    if os.geteuid() != 0:
        print("skipped: needs root (dpkg -i)")
        return 77
    if installed():
        print("skipped: a roomcast package is already installed (%s)" % installed())
        return 77
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build-deb"))
    had_user = user_exists("roomcast")
    tmp = tempfile.mkdtemp(prefix="rcdeb-")
    results = []
    srv = None

    def step(name, fn):
        try:
            fn()
            print("ok   " + name, flush=True)
            results.append(True)
            return True
        except (Failure, subprocess.TimeoutExpired, OSError) as e:
            print("FAIL %s: %s" % (name, e), flush=True)
            results.append(False)
            return False

    debs = {}

    def build_debs():
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        sh("make", "-C", SRC, "deb", "DEB_BUILD=" + build, timeout=900, env=env)
        v1 = [f for f in os.listdir(build) if f.endswith(".deb")]
        eq(len(v1), 1, "one .deb in %s" % build)
        debs["v1"] = os.path.join(build, v1[0])
        version = sh("dpkg-deb", "-f", debs["v1"], "Version").stdout.strip()
        sh("cpack", "-G", "DEB", "-B", os.path.join(tmp, "v2"),
           "-D", "CPACK_DEBIAN_PACKAGE_VERSION=%s+upgrade1" % version, cwd=build)
        debs["v2"] = os.path.join(tmp, "v2", "roomcast_%s+upgrade1_%s.deb" % (
            version, sh("dpkg", "--print-architecture").stdout.strip()))
        check(os.path.isfile(debs["v2"]), "second build %s" % debs["v2"])
        deps = sh("dpkg-deb", "-f", debs["v1"], "Depends").stdout
        for lib in ("libev4", "libluajit", "libssl3", "libc6", "zlib1g", "lua-cjson"):
            check(lib in deps, "Depends names %s: %s" % (lib, deps))

    def install_v1():
        sh("dpkg", "-i", debs["v1"])
        check(installed(), "dpkg says installed")

    def check_install():
        u = pwd.getpwnam("roomcast")
        check(u.pw_uid < 1000, "a system uid: %d" % u.pw_uid)
        check(u.pw_shell.endswith("nologin"), "no login shell: %s" % u.pw_shell)
        st = os.stat(STATE)
        eq((st.st_uid, oct(st.st_mode & 0o777)), (u.pw_uid, "0o750"), STATE + " owner and mode")
        for p in ("/usr/bin/roomcast", "/usr/share/roomcast/lua/roomcast/init.lua",
                  "/usr/share/roomcast/scripts/chat.lua", "/usr/share/roomcast/plugins/ratelimit.lua",
                  "/usr/share/doc/roomcast/examples/roomcast.conf.lua", CONF,
                  "/etc/logrotate.d/roomcast", UNIT):
            check(os.path.isfile(p), p + " installed")
        conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "roomcast").stdout
        check(CONF in conffiles and "/etc/logrotate.d/roomcast" in conffiles,
              "conffiles: %r" % conffiles)
        unit = open(UNIT).read()
        execs = re.findall(r"^Exec\w+=(\S+)(.*)$", unit, re.M)
        check(execs, "Exec lines in the unit")
        for exe, args in execs:
            if exe.startswith("/usr/bin/roomcast"):
                check("-c %s" % CONF in args, "unit passes the packaged config: %s" % args)
        check("ExecStart=/usr/bin/roomcast -c %s" % CONF in unit, "ExecStart path")
        check(re.search(r"^User=roomcast$", unit, re.M), "User=roomcast")
        wants = [os.path.join(r, f) for r, _, fs in os.walk("/etc/systemd/system") for f in fs
                 if f == "roomcast.service"]
        eq(wants, [], "the unit is not enabled")
        eq(roomcast_pids(), [], "nothing started by the install")
        if shutil.which("systemd-analyze"):
            # unknown directives, a missing ExecStart binary, bad values
            p = sh("systemd-analyze", "verify", UNIT, ok=False)
            bad = [l for l in (p.stdout + p.stderr).splitlines() if "roomcast.service" in l]
            eq(bad, [], "systemd-analyze verify " + UNIT)

    def check_t():
        p = sh("/usr/bin/roomcast", "-t", "-c", CONF, cwd="/")
        check("OK" in p.stdout, p.stdout)
        p = sh("/usr/bin/roomcast", "-V", cwd="/")
        check("Lua runtime: /usr/share/roomcast/lua" in p.stdout, p.stdout)

    def serve():
        nonlocal srv
        srv = Started()
        pid = srv.proc.pid
        with open("/proc/%d/status" % pid) as f:
            uid = int(re.search(r"^Uid:\s*(\d+)", f.read(), re.M).group(1))
        eq(uid, pwd.getpwnam("roomcast").pw_uid, "runs as the roomcast user")
        check(any("/usr/share/roomcast/scripts/chat.lua" in l for l in srv.lines) or
              wait_line(srv, "/usr/share/roomcast/scripts/chat.lua"), "serves the packaged chat.lua")
        seed_chat(srv)

    def logrotate():
        """The packaged snippet rotates log_file, and roomcast reopens it on the
        SIGUSR1 the snippet sends (no systemd here: start-stop-daemon)."""
        log = "/var/log/roomcast/roomcast.log"
        p = subprocess.Popen(["setpriv", "--reuid=roomcast", "--regid=roomcast", "--init-groups",
                              "/usr/bin/roomcast", "--echo", "-b", "127.0.0.1", "-p", "0",
                              "-w", "1", "--admin", "off", "--log-file", log],
                             cwd=STATE, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            check(wait_file(log, "listening on"), "the server writes " + log)
            state = os.path.join(tmp, "logrotate.status")
            sh("logrotate", "-f", "-s", state, "/etc/logrotate.d/roomcast")
            check(os.path.exists(log + ".1") and "listening on" in open(log + ".1").read(),
                  "rotated to %s.1: %s" % (log, os.listdir(os.path.dirname(log))))
            eq(pwd.getpwuid(os.stat(log).st_uid).pw_name, "roomcast", "the new log's owner")
            check(wait_reopened(p.pid, log), "the server holds the new %s open" % log)
            p.send_signal(signal.SIGHUP)  # logs "SIGHUP: reloading scripts"
            check(wait_file(log, "SIGHUP"), "the server reopened %s after USR1: %r" %
                  (log, open(log).read()))
            check("SIGHUP" not in open(log + ".1").read(), "nothing more in the rotated file")
        finally:
            p.terminate()
            p.wait(20)
        for f in os.listdir("/var/log/roomcast"):
            os.unlink(os.path.join("/var/log/roomcast", f))

    def upgrade_keeps():
        with open(CONF, "a") as f:
            f.write("-- edited by the operator\n")
        with open(os.path.join(STATE, "history.db"), "w") as f:
            f.write("data")
        os.chown(os.path.join(STATE, "history.db"), pwd.getpwnam("roomcast").pw_uid, -1)
        sh("dpkg", "-i", "--force-confold", debs["v2"])
        check("+upgrade1" in (installed() or ""), "upgraded: %s" % installed())
        check(open(CONF).read().endswith("-- edited by the operator\n"), "the edited conffile kept")
        eq(open(os.path.join(STATE, "history.db")).read(), "data", "the state kept")
        sh("/usr/bin/roomcast", "-t", "-c", CONF, cwd="/")
        check(srv.proc.poll() is None, "a server started by hand survives the upgrade")

    def remove():
        sh("dpkg", "-r", "roomcast")
        try:
            rc = srv.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise Failure("the server still runs after dpkg -r")
        eq(rc, 0, "the server drained and exited on prerm's SIGTERM")
        eq(roomcast_pids(), [], "no roomcast process left")
        check(not os.path.exists("/usr/bin/roomcast"), "binary removed")
        check(os.path.isfile(CONF) and os.path.isdir(STATE), "remove keeps config and state")

    def purge():
        sh("dpkg", "--purge", "roomcast")
        check(not os.path.exists("/etc/roomcast") and not os.path.exists(STATE),
              "purge clears /etc/roomcast and " + STATE)

    try:
        if (step("make deb (and an upgrade build)", build_debs) and
                step("dpkg -i", install_v1)):
            step("user, paths, conffiles, unit paths; not enabled, not started", check_install)
            step("roomcast -t -c " + CONF, check_t)
            if shutil.which("logrotate"):
                step("logrotate -f rotates log_file, SIGUSR1 reopens it", logrotate)
            else:
                print("skip logrotate: not installed")
            if step("started as roomcast without systemd: join + broadcast", serve):
                step("dpkg -i of a newer build keeps /etc/roomcast and " + STATE, upgrade_keeps)
                step("dpkg -r stops it; no process left", remove)
            step("dpkg --purge", purge)
    finally:
        if srv and srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
        if installed() or sh("dpkg-query", "-W", "roomcast", ok=False).returncode == 0:
            sh("dpkg", "--purge", "roomcast", ok=False)
        if not had_user and user_exists("roomcast"):
            sh("userdel", "roomcast", ok=False)
            sh("groupdel", "roomcast", ok=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    return 0 if all(results) else 1


def wait_reopened(pid, path, timeout=10):
    """True once process pid has the file now at `path` open (same inode)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = os.stat(path)
        ino = (st.st_dev, st.st_ino)
        fds = "/proc/%d/fd" % pid
        for fd in os.listdir(fds):
            try:
                fst = os.stat(os.path.join(fds, fd))
                if (fst.st_dev, fst.st_ino) == ino:
                    return True
            except OSError:
                pass
        time.sleep(0.05)
    return False


def wait_file(path, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in open(path).read():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def wait_line(srv, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in l for l in srv.lines):
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    sys.exit(main())
