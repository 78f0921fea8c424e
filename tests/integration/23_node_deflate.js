// 23_node_deflate - permessage-deflate (RFC 7692) with the npm `ws` package's
// perMessageDeflate: echoes of 0 B to 16 MiB compressed both ways (threshold 0),
// fragmented compressed messages, every window size 9..15,
// client_no_context_takeover, and a room broadcast through scripts/chat.lua to
// a mix of deflate and plain members (each gets the same content; the deflate
// members' sockets carry far fewer bytes). Every scenario runs twice against
// the same server. Ends with `N passed, M failed`.
//
// Install the client with `cd tests && npm install`. Without it the test is
// skipped (exit 0).
'use strict';

const crypto = require('crypto');
const path = require('path');

const { requireWs, assert, open, next, closeClean, runSuites } = require('./rcnode');

requireWs();

const CHAT = path.join(__dirname, '..', '..', 'scripts', 'chat.lua');
const BASE = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

function send(ws, data, opts) {
    return new Promise((resolve, reject) =>
        ws.send(data, opts, (err) => (err ? reject(err) : resolve())));
}

function jsonText(n, seed) {
    const unit = '{"type":"chat","user":"u' + seed + '","text":"κόσμε hello again"},';
    return Buffer.from(unit.repeat(Math.ceil(n / Buffer.byteLength(unit)) + 1)).subarray(0, n);
}

const SIZES = [0, 1, 64, 125, 126, 1000, 65535, 65536, 100000, 1024 * 1024, 16 * 1024 * 1024];

const echoTests = {
    async echo_0_to_16mib(srv) {
        const ws = await open(srv, { perMessageDeflate: { threshold: 0 } });
        assert(ws.answer === BASE, 'answer: ' + ws.answer);
        for (const n of SIZES) {
            // ASCII-safe text (cut on a character boundary) and random binary.
            const t = jsonText(n, n).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
            const b = Buffer.concat([crypto.randomBytes(n >> 1), Buffer.alloc(n - (n >> 1))]);
            await send(ws, t, { binary: false });
            await send(ws, b, { binary: true });
            const gt = await next(ws);
            assert(!gt.isBinary && gt.data.toString('latin1') === t, 'text echo of ' + n);
            const gb = await next(ws);
            assert(gb.isBinary && gb.data.equals(b), 'binary echo of ' + n);
        }
        // The socket carried much less than the payloads (both ways compressed).
        const total = SIZES.reduce((a, n) => a + 2 * n, 0);
        assert(ws._socket.bytesRead * 2 < total,
               'bytes read ' + ws._socket.bytesRead + ' for ' + total + ' payload bytes');
        await closeClean(ws);
    },

    async fragmented_compressed(srv) {
        const ws = await open(srv, { perMessageDeflate: { threshold: 0 } });
        const parts = [];
        for (let i = 0; i < 20; i++) parts.push(jsonText(3000 + i * 17, i));
        for (let i = 0; i < parts.length; i++)
            await send(ws, parts[i], { binary: true, fin: i === parts.length - 1, compress: true });
        const got = await next(ws);
        assert(got.data.equals(Buffer.concat(parts)), 'joined compressed fragments');
        await closeClean(ws);
    },

    async every_window_size(srv) {
        for (let bits = 9; bits <= 15; bits++) {
            const ws = await open(srv, {
                perMessageDeflate: { threshold: 0, serverMaxWindowBits: bits,
                                     clientMaxWindowBits: bits },
            });
            const want = BASE + '; server_max_window_bits=' + bits + '; client_max_window_bits=' + bits;
            assert(ws.answer === want, 'answer for ' + bits + ': ' + ws.answer);
            for (const n of [100, (1 << bits) + 500, 200000]) {
                const m = jsonText(n, bits);
                await send(ws, m, { binary: true });
                const got = await next(ws);
                assert(got.data.equals(m), 'window ' + bits + ' echo of ' + n);
            }
            await closeClean(ws);
        }
    },

    async client_no_context_takeover(srv) {
        const ws = await open(srv, {
            perMessageDeflate: { threshold: 0, clientNoContextTakeover: true,
                                 serverNoContextTakeover: true },
        });
        assert(ws.answer === BASE, 'answer: ' + ws.answer);
        for (let i = 0; i < 30; i++) {
            const m = jsonText(500 + i, 7);
            await send(ws, m, { binary: true });
            const got = await next(ws);
            assert(got.data.equals(m), 'echo ' + i);
        }
        await closeClean(ws);
    },
};

async function joinRoom(srv, room, user, deflate) {
    const ws = await open(srv, { perMessageDeflate: deflate ? { threshold: 0 } : false }, '/ws');
    assert((ws.answer !== undefined) === deflate, user + ' negotiated: ' + ws.answer);
    await send(ws, JSON.stringify({ type: 'join', room_id: room, user_id: user }), {});
    const got = JSON.parse((await next(ws)).data.toString());
    assert(got.type === 'joined', user + ' join: ' + JSON.stringify(got));
    return ws;
}

const chatTests = {
    async room_broadcast_mixed_members(srv) {
        const room = 'node-mix-' + process.pid + '-' + Date.now();
        const z = [];
        const p = [];
        for (let i = 0; i < 4; i++) z.push(await joinRoom(srv, room, 'z' + i, true));
        for (let i = 0; i < 4; i++) p.push(await joinRoom(srv, room, 'p' + i, false));
        const zRead0 = z.map((ws) => ws._socket.bytesRead);
        const pRead0 = p.map((ws) => ws._socket.bytesRead);
        const content = 'a chat line that repeats itself, '.repeat(30);
        const count = 10;
        for (let i = 0; i < count; i++) {
            await send(z[0], JSON.stringify({ type: 'broadcast', room_id: room,
                                              content: i + ' ' + content }), {});
        }
        for (const ws of z.concat(p)) {
            for (let i = 0; i < count; i++) {
                const m = JSON.parse((await next(ws)).data.toString());
                assert(m.type === 'broadcast' && m.content === i + ' ' + content,
                       'broadcast ' + i + ': ' + JSON.stringify(m).slice(0, 80));
                assert(m.seq !== undefined, 'seq present');
            }
        }
        const zBytes = z.map((ws, i) => ws._socket.bytesRead - zRead0[i]);
        const pBytes = p.map((ws, i) => ws._socket.bytesRead - pRead0[i]);
        // Every deflate member read the same byte count (one shared frame), and
        // a third or less of a plain member's.
        for (const b of zBytes) assert(b === zBytes[0], 'deflate members read ' + zBytes);
        for (const b of pBytes) assert(b === pBytes[0], 'plain members read ' + pBytes);
        assert(zBytes[0] * 3 < pBytes[0], 'deflate ' + zBytes[0] + ' vs plain ' + pBytes[0]);
        for (const ws of z.concat(p)) await closeClean(ws);
    },
};

// --compression-max 0: the echo tests count compressed bytes up to 16 MiB
// (by default messages over 256K go out plain).
runSuites([
    [['--echo', '--max-message', '20M', '--compression-max', '0', '--admin', 'off'], echoTests],
    [['-s', CHAT, '--admin', 'off'], chatTests],
]);
