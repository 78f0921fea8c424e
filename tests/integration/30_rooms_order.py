"""30_rooms_order - several publishers (spread over the workers by the
kernel) flood one room through scripts/chat.lua; every member must see the
same sequence: seq 1..N contiguous, no gaps, no duplicates, the same content
at the same seq everywhere, and each publisher's messages in the order it
sent them. Runs with -w 1 and -w 3 (RC_WORKERS)."""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rctest  # noqa: E402
from rctest import check, eq, tmo, ws_join  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHAT = os.path.join(HERE, "..", "..", "scripts", "chat.lua")
ARGS = ("-s", CHAT)

MEMBERS = 24
PUBLISHERS = 4
PER_PUBLISHER = 150


async def collect(ws, want):
    got = []
    while len(got) < want:
        m = json.loads(await ws.recv())
        if m.get("type") == "broadcast":
            got.append((m["seq"], m["sender"], m["content"]))
    return got


def test_publishers_flooding_one_room_give_one_order(srv):
    room = "order-%d" % os.getpid()

    async def main():
        members = [await ws_join(srv, room, "m%d" % i) for i in range(MEMBERS)]
        pubs = members[:PUBLISHERS]
        total = PUBLISHERS * PER_PUBLISHER
        readers = [asyncio.create_task(collect(ws, total)) for ws in members]

        async def flood(i, ws):
            for n in range(PER_PUBLISHER):
                await ws.send(json.dumps({"type": "broadcast", "room_id": room,
                                          "content": "m%d-%d" % (i, n)}))

        await asyncio.gather(*(flood(i, ws) for i, ws in enumerate(pubs)))
        results = await asyncio.wait_for(asyncio.gather(*readers), tmo(60))
        first = results[0]
        seqs = [s for s, _, _ in first]
        check(seqs == list(range(seqs[0], seqs[0] + total)),
              "seq contiguous without gaps or duplicates (first %s..%s)" % (seqs[0], seqs[-1]))
        for k, r in enumerate(results[1:], 1):
            check(r == first, "member %d saw a different sequence than member 0" % k)
        for i in range(PUBLISHERS):
            mine = [c for _, s, c in first if s == "m%d" % i]
            eq(mine, ["m%d-%d" % (i, n) for n in range(PER_PUBLISHER)],
               "publisher m%d's order" % i)
        for ws in members:
            await ws.close()

    rctest.run(main(), 90)


def test_members_of_other_rooms_get_nothing(srv):
    async def main():
        a = await ws_join(srv, "iso-a", "ua")
        b = await ws_join(srv, "iso-b", "ub")
        await a.send(json.dumps({"type": "broadcast", "room_id": "iso-a", "content": "x"}))
        m = json.loads(await asyncio.wait_for(a.recv(), tmo(5)))
        eq(m["content"], "x", "own broadcast")
        try:
            extra = await asyncio.wait_for(b.recv(), 0.5)
            raise rctest.Failure("member of another room received %r" % extra)
        except asyncio.TimeoutError:
            pass
        await a.close()
        await b.close()

    rctest.run(main(), 30)


if __name__ == "__main__":
    rctest.main(globals(), default_args=ARGS)
