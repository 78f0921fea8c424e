// 83_client_node - www/roomcast.js itself (the module the demo page loads),
// run in Node with the npm `ws` package as its WebSocket, against a real
// roomcast with scripts/chat.lua and a history of 5 messages per room:
//
//   1. request() settles by id: acks, error replies with their code
//   2. a dropped connection resumes from the last seq, each message once
//   3. missing more than the server kept -> recovery {recovered:false, reason:"gap"}
//   4. the server is down: reconnect attempts back off (jittered, growing),
//      then reconnect when it is back; history reset -> reason "reset"
//   5. pending requests reject with "disconnected" when the socket drops
// Ends with `N passed, M failed`.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');

const { SRC, SLOW, requireWs, assert, sleep, until, freePort, startServer, stopServer, test,
        finish, runMain } = require('./rcnode');

const WebSocket = requireWs();

// chat.lua with the config conf on a fixed port (the clients reconnect there
// after a restart), 2 workers unless RC_WORKERS says otherwise.
function startChat(port, conf) {
    return startServer(['--admin', 'off', '-c', conf, '-s', path.join(SRC, 'scripts', 'chat.lua')],
                       { port, workers: 2 });
}

// A client that records what the app would see.
function client(RoomcastClient, port, user) {
    const rc = new RoomcastClient('ws://127.0.0.1:' + port + '/ws',
        { user, WebSocket, minDelay: 100, maxDelay: 800, requestTimeout: 5000 * SLOW });
    rc.seen = [];
    rc.recoveries = [];
    rc.states = [];
    rc.addEventListener('message', (e) => rc.seen.push(e.detail.msg));
    rc.addEventListener('recovery', (e) => rc.recoveries.push(e.detail));
    rc.addEventListener('state', (e) => rc.states.push(e.detail));
    return rc;
}

async function main() {
    const { RoomcastClient, RoomcastError } =
        await import(pathToFileURL(path.join(SRC, 'www', 'roomcast.js')).href);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rc83-'));
    const conf = path.join(tmp, 'c.lua');
    fs.writeFileSync(conf, 'return { history_size = 5 }\n');
    const port = await freePort();
    let srv = await startChat(port, conf);
    const problems = [];
    const a = client(RoomcastClient, port, 'ann');
    const b = client(RoomcastClient, port, 'ben');
    try {
        await test('request() settles by id: acks and error codes', async () => {
            a.connect();
            b.connect();
            const j = await a.join('r1');
            assert(j.type === 'joined' && j.room_id === 'r1', 'joined ' + JSON.stringify(j));
            await b.join('r1');
            const ack = await a.broadcast('r1', 'one');
            assert(ack.type === 'ack', 'ack ' + JSON.stringify(ack));
            let err = null;
            try {
                await a.broadcast('not-joined', 'x');
            } catch (e) {
                err = e;
            }
            assert(err instanceof RoomcastError && err.code === 'not_member',
                'error ' + (err && err.code));
            const p = await b.presence('r1');
            assert(p.count === 2 && p.users.sort().join() === 'ann,ben', JSON.stringify(p));
            await until('ben has one', () => b.seen.length === 1);
        });

        await test('a dropped connection resumes from its last seq, each message once', async () => {
            b.drop();
            await until('ben reconnecting', () => b.state !== 'open');
            for (let i = 0; i < 3; i++) await a.broadcast('r1', 'd' + i);
            await until('ben back', () => b.seen.length === 4);
            await sleep(200);
            const texts = b.seen.map((m) => m.content);
            assert(texts.join() === 'one,d0,d1,d2', 'ben saw ' + texts);
            const seqs = b.seen.map((m) => m.seq);
            for (let i = 1; i < seqs.length; i++) assert(seqs[i] === seqs[i - 1] + 1, 'seqs ' + seqs);
            const last = b.recoveries[b.recoveries.length - 1];
            assert(last && last.recovered === true && last.room === 'r1', JSON.stringify(b.recoveries));
        });

        await test('missing more than the server kept says recovered: false (gap)', async () => {
            b.stopped = true; // keep ben away while ann talks
            b.ws.close();
            await until('ben closed', () => b.ws === null);
            for (let i = 0; i < 9; i++) await a.broadcast('r1', 'g' + i);
            b.stopped = false;
            b.connect();
            await until('ben caught up', () => b.seen.length && b.seen[b.seen.length - 1].content === 'g8');
            const gap = b.recoveries.find((r) => r.reason === 'gap');
            assert(gap && gap.recovered === false, 'no gap event: ' + JSON.stringify(b.recoveries));
            const got = b.seen.slice(4).map((m) => m.content);
            assert(got.join() === 'g4,g5,g6,g7,g8', 'the kept five, in order: ' + got);
        });

        await test('the server is down: backoff, then back; history reset is reported', async () => {
            const seqBefore = b.lastSeq('r1');
            // Settled into a value at once: the rejection may come while
            // stopServer is awaited, before anything else could handle it.
            const pending = a.presence('r1').then(() => null, (e) => e);
            problems.push(...(await stopServer(srv)));
            const err = await pending;
            assert(err === null || err.code === 'disconnected', 'pending: ' + (err && err.code));
            let failed = null;
            try {
                await a.broadcast('r1', 'while down');
            } catch (e) {
                failed = e;
            }
            assert(failed && failed.code === 'disconnected', 'send while down');
            a.states.length = 0;
            await sleep(1500 * SLOW);
            const tries = a.states.filter((s) => s.state === 'reconnecting');
            assert(tries.length >= 2, 'reconnect attempts ' + JSON.stringify(tries));
            for (const t of tries) {
                // attempt n (1-based) waits a random time in [base/2, base],
                // base = minDelay * 2^(n-1) capped at maxDelay
                const base = Math.min(800, 100 * 2 ** (t.attempt - 1));
                assert(t.delay >= base / 2 && t.delay <= base,
                    'attempt ' + t.attempt + ' waits ' + t.delay + ', outside [' + base / 2 + ', ' +
                    base + ']');
            }
            assert(tries[tries.length - 1].attempt > tries[0].attempt, 'attempts count up');
            srv = await startChat(port, conf);
            await until('both open', () => a.state === 'open' && b.state === 'open', 15000);
            await until('reset seen', () => b.recoveries.some((r) => r.reason === 'reset'));
            assert(b.lastSeq('r1') < seqBefore, 'seq restarted');
            await a.broadcast('r1', 'after restart');
            await until('ben gets it', () => b.seen[b.seen.length - 1].content === 'after restart');
        });
    } finally {
        a.close();
        b.close();
        problems.push(...(await stopServer(srv)));
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    finish(problems);
}

runMain(main);
