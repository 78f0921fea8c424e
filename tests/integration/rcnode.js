// rcnode - what the Node integration tests share:
//
//   - the npm clients: requireWs() (the `ws` package) and requireChromium()
//     (puppeteer-core and Debian's Chromium), each a SKIP (exit 0) when missing;
//   - a roomcast process: startServer (any free port or a fixed one, so that a
//     test can restart it where its clients reconnect; RC_WORKERS workers) and
//     stopServer (SIGTERM; a bad exit or a sanitizer report in its log is a
//     problem);
//   - waiting and HTTP: sleep, until, freePort, getJson;
//   - a `ws` client with an inbox (open / next / closeClean); `ws.answer`
//     holds the server's Sec-WebSocket-Extensions answer;
//   - two runners: runSuites (each scenario twice against one server per
//     suite) and test / finish / runMain (scenarios in sequence).
//
// Every test ends with `N passed, M failed`. The environment is cmake's
// (cmake/tests.cmake): ROOMCAST_BIN, RC_SOURCE_DIR, RC_WORKERS, RC_SANITIZE
// (timeouts x4), RC_CHROMIUM.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

const SRC = process.env.RC_SOURCE_DIR || path.join(__dirname, '..', '..');
const BIN = process.env.ROOMCAST_BIN || path.join(SRC, 'build', 'roomcast');
const SLOW = process.env.RC_SANITIZE ? 4 : 1;
const SANITIZER =
    /AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|runtime error:/;

// --- the npm clients ------------------------------------------------------------------

// Prints why the test does not run and exits 0; `tally` adds the
// `0 passed, 0 failed` line of a test (not of a helper script).
function skip(why, tally = true) {
    console.log('SKIP: ' + why);
    if (tally) console.log('0 passed, 0 failed');
    process.exit(0);
}

// An npm package from NODE_PATH or tests/node_modules, or null.
function npm(name) {
    try {
        return require(name);
    } catch (e) {
        try {
            return require(path.join(__dirname, '..', 'node_modules', name));
        } catch (e2) {
            return null;
        }
    }
}

let WebSocket = null;

function requireWs() {
    if (!WebSocket) WebSocket = npm('ws');
    if (!WebSocket) skip('the npm package "ws" is not installed (run: cd tests && npm install)');
    return WebSocket;
}

// { puppeteer, CHROMIUM }: CHROMIUM is $RC_CHROMIUM or Debian's /usr/bin/chromium.
function requireChromium(tally = true) {
    const puppeteer = npm('puppeteer-core');
    if (!puppeteer) skip('npm puppeteer-core is not installed (run: cd tests && npm install)', tally);
    const CHROMIUM = process.env.RC_CHROMIUM || '/usr/bin/chromium';
    if (!fs.existsSync(CHROMIUM)) skip(CHROMIUM + ' is missing (apt-get install chromium)', tally);
    return { puppeteer, CHROMIUM };
}

// --- waiting and HTTP -------------------------------------------------------------------

function assert(cond, msg) {
    if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(what + ': timed out after ' + ms * SLOW + ' ms')),
                           ms * SLOW);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Polls fn until it returns a true value (which until returns); a throw
// counts as "not yet". Fails after ms (x4 under a sanitizer) with fn's last
// answer.
async function until(what, fn, ms = 10000) {
    const end = Date.now() + ms * SLOW;
    let last;
    while (Date.now() < end) {
        try {
            last = await fn();
            if (last) return last;
        } catch (e) {
            last = e;
        }
        await sleep(50);
    }
    throw new Error(what + ': not within ' + ms * SLOW + ' ms (last: ' + String(last) + ')');
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.listen(0, '127.0.0.1', () => {
            const p = s.address().port;
            s.close(() => resolve(p));
        });
        s.on('error', reject);
    });
}

function getJson(port, p) {
    return new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: p }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => {
                try {
                    resolve(JSON.parse(body));
                } catch (e) {
                    reject(new Error('bad JSON from ' + p + ': ' + body));
                }
            });
        }).on('error', reject);
    });
}

// --- the server ---------------------------------------------------------------------------

// roomcast ... args on 127.0.0.1:port (0: a free one) with RC_WORKERS workers
// (unset: `workers`, else the server's default). Resolves with
// { proc, log, host, port, exited } once the log has "listening on ws://" and
// matches `ready` (when given).
function startServer(args, { port = 0, workers, ready } = {}) {
    return new Promise((resolve, reject) => {
        const w = process.env.RC_WORKERS || workers;
        const proc = spawn(BIN, ['-b', '127.0.0.1', '-p', String(port),
                                 ...(w ? ['-w', String(w)] : []), ...args],
                           { stdio: ['ignore', 'pipe', 'pipe'] });
        const srv = { proc, log: '', host: null, port: 0, ready: false, exited: null };
        const onData = (chunk) => {
            srv.log += chunk.toString();
            const m = /listening on ws:\/\/([^\s:/]+):(\d+)\//.exec(srv.log);
            if (m && !srv.ready && (!ready || ready.test(srv.log))) {
                srv.host = m[1];
                srv.port = parseInt(m[2], 10);
                srv.ready = true;
                clearTimeout(timer);
                resolve(srv);
            }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.on('error', (e) => reject(new Error('cannot start ' + BIN + ': ' + e.message)));
        proc.on('exit', (code, signal) => {
            srv.exited = { code, signal };
            if (!srv.ready) {
                reject(new Error('server exited (' + code + '/' + signal +
                                 ') before listening:\n' + srv.log));
            }
        });
        const timer = setTimeout(() => {
            proc.kill('SIGKILL');
            reject(new Error('not listening within ' + 10 * SLOW + ' s:\n' + srv.log));
        }, 10000 * SLOW);
    });
}

// SIGTERM (unless it has exited already); resolves with a list of problems:
// a signal or exit status, no exit within 10 s (then SIGKILL), a sanitizer
// report in the log (quoted from its first line).
function stopServer(srv) {
    return new Promise((resolve) => {
        const problems = [];
        const when = srv.exited ? ' before SIGTERM' : ' after SIGTERM';
        const finish = () => {
            const { code, signal } = srv.exited;
            if (signal && signal !== 'SIGKILL') problems.push('died from ' + signal + when);
            else if (code) problems.push('exit status ' + code + when);
            const at = srv.log.search(SANITIZER);
            if (at >= 0) {
                const from = srv.log.lastIndexOf('\n', at) + 1;
                problems.push('sanitizer report in the log:\n' + srv.log.slice(from));
            }
            resolve(problems);
        };
        if (srv.exited) return finish();
        const killer = setTimeout(() => {
            problems.push('did not exit within ' + 10 * SLOW + ' s of SIGTERM (killed)');
            srv.proc.kill('SIGKILL');
        }, 10000 * SLOW);
        srv.proc.on('exit', () => { clearTimeout(killer); setImmediate(finish); });
        srv.proc.kill('SIGTERM');
    });
}

// --- the `ws` client ------------------------------------------------------------------------

function open(srv, opts = {}, urlPath = '/') {
    const WS = requireWs();
    return withTimeout(new Promise((resolve, reject) => {
        const ws = new WS('ws://' + srv.host + ':' + srv.port + urlPath,
                          { maxPayload: 64 * 1024 * 1024, ...opts });
        ws.inbox = [];
        ws.waiters = [];
        ws.on('message', (data, isBinary) => {
            const item = { data: Buffer.from(data), isBinary };
            if (ws.waiters.length) ws.waiters.shift()(item);
            else ws.inbox.push(item);
        });
        ws.once('upgrade', (res) => { ws.answer = res.headers['sec-websocket-extensions']; });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
        ws.once('unexpected-response', (req, res) => reject(new Error('HTTP ' + res.statusCode)));
    }), 5000, 'connect');
}

function next(ws) {
    if (ws.inbox.length) return Promise.resolve(ws.inbox.shift());
    return withTimeout(new Promise((resolve) => ws.waiters.push(resolve)), 10000, 'echo');
}

function closeClean(ws, code = 1000, reason = 'done') {
    return withTimeout(new Promise((resolve, reject) => {
        ws.once('close', (gotCode, gotReason) => {
            if (gotCode !== code) reject(new Error('close code ' + gotCode + ', want ' + code));
            else resolve(gotReason.toString());
        });
        ws.close(code, reason);
    }), 5000, 'close');
}

// --- runners --------------------------------------------------------------------------------

// One server started with args; every test (name -> async fn(srv)) runs
// twice against it; then its shutdown is checked. Resolves with
// [passed, failed].
async function runSuite(args, tests) {
    let passed = 0;
    let failed = 0;
    let srv;
    try {
        srv = await startServer(args);
    } catch (e) {
        console.log('FAIL server start: ' + e.message);
        return [0, 1];
    }
    for (const [name, fn] of Object.entries(tests)) {
        const t0 = Date.now();
        let error = null;
        for (let run = 1; run <= 2 && !error; run++) {
            try {
                await withTimeout(fn(srv), 60000, name);
            } catch (e) {
                error = 'run ' + run + ': ' + e.message;
            }
            if (srv.exited) {
                error = (error || 'run ' + run) + ' -- server died: ' +
                    JSON.stringify(srv.exited) + '\n' + srv.log.slice(-3000);
            }
        }
        if (error) {
            failed++;
            console.log('FAIL ' + name + ' ' + error);
        } else {
            passed++;
            console.log('ok   ' + name + ' (2 runs, ' + ((Date.now() - t0) / 1000).toFixed(2) + 's)');
        }
        if (srv.exited) break;
    }
    const problems = await stopServer(srv);
    if (problems.length) {
        failed++;
        console.log('FAIL server shutdown: ' + problems.join('; ') + '\n' + srv.log.slice(-3000));
    } else {
        passed++;
        console.log('ok   server shutdown [' + args.join(' ') + ']');
    }
    return [passed, failed];
}

// suites: [[args, tests], ...], one runSuite each; prints the sum and exits.
async function runSuites(suites) {
    let passed = 0;
    let failed = 0;
    for (const [args, tests] of suites) {
        const [p, f] = await runSuite(args, tests);
        passed += p;
        failed += f;
    }
    console.log(passed + ' passed, ' + failed + ' failed');
    process.exit(failed ? 1 : 0);
}

const results = [];

// Runs one scenario of a test that runs them in sequence: ok or FAIL with
// the stack. A failure does not stop the next scenario.
async function test(name, fn) {
    const t0 = Date.now();
    try {
        await fn();
        results.push(true);
        console.log('ok   ' + name + ' (' + (Date.now() - t0) + ' ms)');
    } catch (e) {
        results.push(false);
        console.log('FAIL ' + name + ': ' + (e && e.stack ? e.stack : e));
    }
}

// The server's problems (stopServer's) count as one more failure; prints
// `N passed, M failed` and exits.
function finish(problems) {
    if (problems.length) {
        results.push(false);
        console.log('FAIL server: ' + problems.join('; '));
    }
    const passed = results.filter((x) => x).length;
    console.log(passed + ' passed, ' + (results.length - passed) + ' failed');
    process.exit(passed === results.length ? 0 : 1);
}

// main() of a test: a throw outside the scenarios fails the test.
function runMain(main) {
    main().catch((e) => {
        console.log('FAIL setup: ' + (e && e.stack ? e.stack : e));
        console.log('0 passed, 1 failed');
        process.exit(1);
    });
}

module.exports = {
    SRC, BIN, SLOW, SANITIZER, skip, requireWs, requireChromium,
    assert, sleep, withTimeout, until, freePort, getJson,
    startServer, stopServer, open, next, closeClean,
    runSuites, test, finish, runMain,
};
