// 11_node_ws - a real third-party client (the npm `ws` package, major 8)
// against `roomcast --echo`: concurrent clients, text and binary echoes up to
// 1 MiB (byte-identical, in order), permessage-deflate offered, ping/pong,
// the clean 1000 close, and a 404 for an unknown path. Every scenario runs
// twice against the same server. Ends with `N passed, M failed`.
//
// Install the client with `cd tests && npm install`. Without it the test
// is skipped (exit 0).
'use strict';

const crypto = require('crypto');

const { requireWs, withTimeout, assert, open, next, closeClean, runSuites } = require('./rcnode');

const WebSocket = requireWs();

function send(ws, data, binary) {
    return new Promise((resolve, reject) =>
        ws.send(data, { binary }, (err) => (err ? reject(err) : resolve())));
}

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 100000, 1024 * 1024];

function textOf(n, seed) {
    // Multi-byte characters included; trimmed to exactly n bytes of valid UTF-8.
    const unit = 'κόσμε-' + seed + '-€𤭢-';
    let s = unit.repeat(Math.ceil(n / Buffer.byteLength(unit)) + 1);
    let b = Buffer.from(s);
    b = b.subarray(0, n);
    while (b.length && !Buffer.from(b.toString()).equals(b)) b = b.subarray(0, b.length - 1);
    return b.toString() + 'x'.repeat(n - b.length);
}

async function echoSession(srv, id, opts) {
    const ws = await open(srv, opts, id % 2 ? '/ws' : '/');
    const sent = [];
    for (const n of SIZES) {
        const t = textOf(n, id);
        const b = crypto.randomBytes(n);
        await send(ws, t, false);
        await send(ws, b, true);
        sent.push({ data: Buffer.from(t), isBinary: false }, { data: b, isBinary: true });
    }
    for (let i = 0; i < sent.length; i++) {
        const got = await next(ws);
        const what = 'client ' + id + ' message ' + i + ' (' + sent[i].data.length + ' bytes)';
        assert(got.isBinary === sent[i].isBinary,
               what + ': binary=' + got.isBinary + ', want ' + sent[i].isBinary);
        assert(got.data.equals(sent[i].data),
               what + ': echo differs (got ' + got.data.length + ' bytes)');
    }
    await closeClean(ws);
}

// --- tests -----------------------------------------------------------------------------------

const tests = {
    async concurrent_clients_text_and_binary(srv) {
        await Promise.all([0, 1, 2, 3, 4, 5].map((id) =>
            echoSession(srv, id, { perMessageDeflate: false })));
    },

    async deflate_offered(srv) {
        // ws offers permessage-deflate; whether the server accepts it or not,
        // the echoes must be identical.
        await Promise.all([10, 11].map((id) => echoSession(srv, id, { perMessageDeflate: true })));
    },

    async ping_pong(srv) {
        const ws = await open(srv, { perMessageDeflate: false });
        for (const payload of [Buffer.alloc(0), Buffer.from('hello'), crypto.randomBytes(125)]) {
            const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)),
                                     5000, 'pong');
            ws.ping(payload);
            const got = await pong;
            assert(Buffer.from(got).equals(payload), 'pong payload differs from the ping');
        }
        await closeClean(ws);
    },

    async close_1000_with_reason(srv) {
        const ws = await open(srv, { perMessageDeflate: false });
        await send(ws, 'last', false);
        const got = await next(ws);
        assert(got.data.toString() === 'last', 'echo before close');
        await closeClean(ws, 1000, 'bye');
        assert(ws.readyState === WebSocket.CLOSED, 'readyState after close: ' + ws.readyState);
    },

    async close_app_code_echoed(srv) {
        const ws = await open(srv, { perMessageDeflate: false });
        await closeClean(ws, 4000, 'app');
    },

    async unknown_path_404(srv) {
        let status = 0;
        try {
            const ws = await open(srv, {}, '/no-such-path');
            ws.terminate();
        } catch (e) {
            status = e.message;
        }
        assert(status === 'HTTP 404', 'unknown path: ' + (status || 'upgraded'));
    },
};

runSuites([[['--echo', '--max-message', '64M'], tests]]);
