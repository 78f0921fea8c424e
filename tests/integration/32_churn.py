"""32_churn - clients join, leave, broadcast and disconnect (cleanly and
abruptly) in random order while broadcasts run, for a bounded time. The
server must stay up with no sanitizer report (this test also runs in the
ASan and TSan builds), and afterwards a fresh pair of clients must still
round-trip through a room. Runs with -w 1 and -w 3."""

import asyncio
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, tmo  # noqa: E402

import websockets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHAT = os.path.join(HERE, "..", "..", "scripts", "chat.lua")
ROOMS = ["churn-%d" % i for i in range(5)]
DURATION = 4.0
CLIENTS = 40


async def churner(srv, k, stop_at, rnd):
    while time.monotonic() < stop_at:
        try:
            ws = await websockets.connect(rctest.ws_url(srv), ping_interval=None, compression=None)
        except OSError:
            continue
        try:
            for _ in range(rnd.randint(1, 20)):
                room = rnd.choice(ROOMS)
                op = rnd.random()
                if op < 0.4:
                    msg = {"type": "join", "room_id": room, "user_id": "u%d" % k}
                elif op < 0.6:
                    msg = {"type": "leave", "room_id": room}
                else:
                    msg = {"type": "broadcast", "room_id": room, "content": "c%d" % k}
                await ws.send(json.dumps(msg))
                if rnd.random() < 0.3:
                    await asyncio.sleep(0)
            if rnd.random() < 0.5:
                ws.transport.abort()  # vanish without a close frame
            else:
                await ws.close()
        except websockets.ConnectionClosed:
            pass


def test_churn_then_rooms_still_work(srv):
    async def main():
        stop_at = time.monotonic() + DURATION
        await asyncio.gather(*(churner(srv, k, stop_at, random.Random(k))
                               for k in range(CLIENTS)))
        check(srv.alive(), "server alive after churn")
        a = await rctest.ws_join(srv, ROOMS[0], "after-a")
        b = await rctest.ws_join(srv, ROOMS[0], "after-b")
        await a.send(json.dumps({"type": "broadcast", "room_id": ROOMS[0], "content": "hi"}))
        for ws in (a, b):
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), tmo(5)))
                if m.get("type") == "broadcast" and m.get("sender") == "after-a":
                    eq(m["content"], "hi", "broadcast after churn")
                    break
        await a.close()
        await b.close()

    rctest.run(main(), 60)


if __name__ == "__main__":
    rctest.main(globals(), default_args=("-s", CHAT))
