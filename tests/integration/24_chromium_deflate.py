"""24_chromium_deflate - a real browser (headless Chromium) against
`roomcast --echo`: Chromium offers permessage-deflate, accepts our answer
(server_no_context_takeover; client_no_context_takeover), compresses what it
sends, and inflates what we send; text of 0 B to 1 MiB is echoed exactly,
and the server's metrics show the compressed bytes it inflated. Skipped
when chromium is not installed."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rcadmin  # noqa: E402
import rctest  # noqa: E402
from rctest import check, eq, tmo  # noqa: E402

import websockets  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ("--echo", "--max-message", "4M", "--admin", "127.0.0.1:0")
BASE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
TMP = rctest.scratch_dir("rc24-")

# Run in the page through the DevTools protocol (Runtime.evaluate awaits the
# promise), so the result does not depend on when a headless dump happens.
SCRIPT = """new Promise((resolve) => {
    const ws = new WebSocket("ws://127.0.0.1:%(port)d/ws");
    const sizes = [0, 10, 100, 1000, 65536, 1048576];
    const msgs = sizes.map((n, i) =>
        ('{"i":' + i + ',"text":"' + "chromium says hello again, ".repeat(n / 20 + 1)).slice(0, n));
    let got = 0, ok = true;
    ws.onopen = () => { for (const m of msgs) ws.send(m); };
    ws.onmessage = (e) => {
        if (e.data !== msgs[got]) ok = false;
        if (++got === msgs.length) { resolve("ext=[" + ws.extensions + "] ok=" + ok); ws.close(); }
    };
    ws.onerror = () => resolve("error");
})"""


async def _cdp(ws_url, expression):
    async with websockets.connect(ws_url, max_size=None, ping_interval=None) as cdp:
        await cdp.send(json.dumps({"id": 1, "method": "Target.createTarget",
                                   "params": {"url": "about:blank"}}))
        target = None
        while target is None:
            r = json.loads(await cdp.recv())
            if r.get("id") == 1:
                target = r["result"]["targetId"]
        await cdp.send(json.dumps({"id": 2, "method": "Target.attachToTarget",
                                   "params": {"targetId": target, "flatten": True}}))
        session = None
        while session is None:
            r = json.loads(await cdp.recv())
            if r.get("id") == 2:
                session = r["result"]["sessionId"]
        await cdp.send(json.dumps({"id": 3, "sessionId": session, "method": "Runtime.evaluate",
                                   "params": {"expression": expression, "awaitPromise": True,
                                              "returnByValue": True}}))
        while True:
            r = json.loads(await cdp.recv())
            if r.get("id") == 3:
                return r["result"]["result"].get("value")


def browse(srv):
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                             "--user-data-dir=" + tempfile.mkdtemp(prefix="profile-", dir=TMP),
                             "--remote-debugging-port=0", "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        ws_url = None
        deadline = time.monotonic() + tmo(30)
        while ws_url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws_url = m.group(1)
        check(ws_url is not None, "chromium printed no DevTools address")
        return asyncio.run(asyncio.wait_for(_cdp(ws_url, SCRIPT % {"port": srv.port}), tmo(30)))
    finally:
        proc.kill()
        proc.wait()


def test_chromium_echo_with_deflate(srv):
    port = rcadmin.admin_port(srv)
    before = rcadmin.metrics(port)
    result = browse(srv)
    eq(result, "ext=[%s] ok=true" % BASE, "the page's result")
    after = rcadmin.metrics(port)

    def delta(name):
        return rcadmin.total(after, "roomcast_" + name) - rcadmin.total(before, "roomcast_" + name)
    eq(delta("deflate_negotiated_total"), 1, "negotiated connections")
    raw, wire = delta("deflate_in_raw_bytes_total"), delta("deflate_in_wire_bytes_total")
    check(raw >= 1048576 + 65536, "inflated bytes from Chromium: %d" % raw)
    check(wire * 5 < raw, "Chromium compressed %d -> %d" % (raw, wire))
    check(delta("deflate_out_wire_bytes_total") * 5 < delta("deflate_out_raw_bytes_total"),
          "server compression toward Chromium")


if __name__ == "__main__":
    if CHROMIUM is None:
        print("SKIP: chromium is not installed")
        print("0 passed, 0 failed")
        sys.exit(0)
    rctest.main(globals(), default_args=ARGS)
