// rcnode - what the Node integration tests share: the npm `ws` client (or a
// skip when it is not installed), starting and stopping a roomcast process
// (RC_WORKERS workers, sanitizer reports in its log count as failures), and a
// client with an inbox (open / next / closeClean). `ws.answer` holds the
// server's Sec-WebSocket-Extensions answer.
'use strict';

const { spawn } = require('child_process');
const path = require('path');

let WebSocket;
try {
    WebSocket = require('ws');
} catch (e) {
    try {
        WebSocket = require(path.join(__dirname, '..', 'node_modules', 'ws'));
    } catch (e2) {
        console.log('SKIP: the npm package "ws" is not installed (run: cd tests && npm install)');
        console.log('0 passed, 0 failed');
        process.exit(0);
    }
}

const BIN = process.env.ROOMCAST_BIN || path.join(__dirname, '..', '..', 'build', 'roomcast');
const SLOW = process.env.RC_SANITIZE ? 4 : 1;
const SANITIZER =
    /AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|runtime error:/;

function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(what + ': timed out after ' + ms * SLOW + ' ms')),
                           ms * SLOW);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function assert(cond, msg) {
    if (!cond) throw new Error(msg);
}

// --- server -------------------------------------------------------------------------

function startServer(args) {
    return new Promise((resolve, reject) => {
        const workers = process.env.RC_WORKERS ? ['-w', process.env.RC_WORKERS] : [];
        const proc = spawn(BIN, ['-b', '127.0.0.1', '-p', '0', ...workers, ...args],
                           { stdio: ['ignore', 'pipe', 'pipe'] });
        const srv = { proc, log: '', port: 0, exited: null };
        const onData = (chunk) => {
            srv.log += chunk.toString();
            const m = /listening on ws:\/\/([^\s:/]+):(\d+)\//.exec(srv.log);
            if (m && !srv.port) {
                srv.host = m[1];
                srv.port = parseInt(m[2], 10);
                clearTimeout(timer);
                resolve(srv);
            }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.on('error', (e) => reject(new Error('cannot start ' + BIN + ': ' + e.message)));
        proc.on('exit', (code, signal) => {
            srv.exited = { code, signal };
            if (!srv.port) {
                reject(new Error('server exited (' + code + '/' + signal +
                                 ') before listening:\n' + srv.log));
            }
        });
        const timer = setTimeout(() => {
            proc.kill('SIGKILL');
            reject(new Error('no "listening on" line within ' + 10 * SLOW + ' s:\n' + srv.log));
        }, 10000 * SLOW);
    });
}

function stopServer(srv) {
    return new Promise((resolve) => {
        const problems = [];
        const finish = () => {
            const { code, signal } = srv.exited;
            if (signal && signal !== 'SIGKILL') problems.push('died from ' + signal);
            else if (code) problems.push('exit status ' + code + ' after SIGTERM');
            if (SANITIZER.test(srv.log)) problems.push('sanitizer report in the log');
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

// --- client helpers ---------------------------------------------------------------------

function open(srv, opts = {}, urlPath = '/') {
    return withTimeout(new Promise((resolve, reject) => {
        const ws = new WebSocket('ws://' + srv.host + ':' + srv.port + urlPath,
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


module.exports = { WebSocket, BIN, SLOW, SANITIZER, withTimeout, assert, startServer, stopServer,
                   open, next, closeClean };
