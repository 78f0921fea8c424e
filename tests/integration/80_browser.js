// 80_browser - the demo page (www/), www/roomcast.js and the admin dashboard
// in a real headless Chromium (Debian's /usr/bin/chromium) driven by npm
// puppeteer-core. Pages load from roomcast's own origin (Chromium refuses
// ws://127.0.0.1 from about:blank).
//
//   1. two pages chat through the demo UI (form fields and buttons)
//   2. a page is cut off (CDP offline + its socket closed), misses messages,
//      reconnects, and shows every missed message once, in seq order
//   3. the script is reloaded (SIGHUP) while the pages stay open: no reconnect
//   4. the server restarts while the pages stay open: they reconnect, say
//      that history was reset, and chat again
//   5. the dashboard's figures match /stats
// Screenshots of the demo page and the dashboard go to docs/ (or
// $RC_SCREENSHOT_DIR). Ends with `N passed, M failed`.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const { SRC, SLOW, requireChromium, assert, sleep, until, freePort, getJson, startServer,
        stopServer, test, finish, runMain } = require('./rcnode');

const { puppeteer, CHROMIUM } = requireChromium();
const SHOTS = process.env.RC_SCREENSHOT_DIR || path.join(SRC, 'docs');

function post(port, p, token, obj) {
    return new Promise((resolve, reject) => {
        const data = JSON.stringify(obj);
        const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST',
            headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json',
                'Content-Length': Buffer.byteLength(data) } }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
        });
        req.on('error', reject);
        req.end(data);
    });
}

// --- the server ------------------------------------------------------------------------

const TOKEN = 'browser-test-token';

// chat.lua (a copy that the test edits) with the demo page and the admin API
// on fixed ports (the pages reconnect there after a restart), 2 workers
// unless RC_WORKERS says otherwise.
function startChat(env) {
    return startServer(['-s', env.script, '--static', path.join(SRC, 'www'),
                        '--admin', '127.0.0.1:' + env.admin, '--api-token', TOKEN],
                       { port: env.port, workers: 2, ready: /admin listening on/ });
}

// --- page helpers ------------------------------------------------------------------------

async function openChat(browser, env, name) {
    if (process.env.RC_DEBUG) console.log('  open ' + name);
    const page = await browser.newPage();
    await page.setViewport({ width: 1000, height: 620 });
    page.on('pageerror', (e) => console.log('  [' + name + ' page error] ' + e.message));
    await page.goto('http://127.0.0.1:' + env.port + '/', { waitUntil: 'load' });
    await page.type('#name', name);
    await page.$eval('#first-room', (e) => (e.value = ''));
    await page.type('#first-room', 'lobby');
    await page.click('#login-btn');
    await until(name + ' open', () => page.$eval('#state', (e) => e.dataset.state === 'open'));
    await until(name + ' joined', () => page.evaluate(() =>
        window.roomcast && window.roomcast.rooms.get('lobby') &&
        window.roomcast.pending.size === 0));
    return page;
}

async function say(page, text) {
    if (process.env.RC_DEBUG) console.log('  say ' + text);
    // Typing and clicking wait for the element to be painted: a background
    // tab never paints, so the page acted on comes to the front first.
    await page.bringToFront();
    await page.type('#text', text);
    await page.click('#send-btn');
    await until('sent ' + text, () => page.$eval('#text', (e) => e.value === ''));
}

// The chat lines of the current room: [{seq, sender, text}]
function lines(page) {
    return page.$$eval('#messages li.msg.chat', (els) => els.map((e) => ({
        seq: Number(e.dataset.seq),
        sender: e.querySelector('.sender').textContent,
        text: e.querySelector('.content').textContent,
    })));
}

async function hasLine(page, text) {
    return (await lines(page)).some((l) => l.text === text);
}

// --- the scenarios -------------------------------------------------------------------------

async function main() {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rc-browser-'));
    const script = path.join(tmp, 'chat.lua');
    fs.copyFileSync(path.join(SRC, 'scripts', 'chat.lua'), script);
    const env = { port: await freePort(), admin: await freePort(), script };
    let srv = await startChat(env);
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        protocolTimeout: 30000 * SLOW,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            // two pages chat at once: neither may be throttled or frozen as a background tab
            '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
            '--disable-backgrounding-occluded-windows',
            '--user-data-dir=' + path.join(tmp, 'profile')],
    });
    const problems = [];
    let alice, bob;
    try {
        await test('two pages chat through the demo UI', async () => {
            alice = await openChat(browser, env, 'alice');
            bob = await openChat(browser, env, 'bob');
            await say(alice, 'hello from alice');
            await until('bob sees alice', () => hasLine(bob, 'hello from alice'));
            await say(bob, 'hi alice, bob here');
            await until('alice sees bob', () => hasLine(alice, 'hi alice, bob here'));
            const a = await lines(alice);
            assert(a.length === 2, 'alice has ' + a.length + ' lines, want 2');
            assert(a[0].sender === 'alice' && a[1].sender === 'bob', 'senders ' + JSON.stringify(a));
            assert(a[1].seq === a[0].seq + 1, 'seqs ' + JSON.stringify(a));
            // presence: both names in the member list
            await until('members', () => alice.$$eval('#members li', (els) =>
                els.map((e) => e.textContent).sort().join(',') === 'alice,bob'));
            // a direct message through the form
            await bob.bringToFront();
            await bob.type('#direct-to', 'alice');
            await bob.type('#direct-text', 'psst');
            await bob.click('#direct-btn');
            await until('direct', () => alice.$$eval('#messages li.msg.direct .content',
                (els) => els.some((e) => e.textContent === 'psst')));
        });

        await test('a page cut off misses messages, reconnects, shows each once in order', async () => {
            const cdp = await bob.target().createCDPSession();
            await cdp.send('Network.enable');
            await cdp.send('Network.emulateNetworkConditions',
                { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
            await bob.evaluate(() => window.roomcast.drop());
            await until('bob offline', () => bob.$eval('#state', (e) => e.dataset.state !== 'open'));
            const missed = [];
            for (let i = 1; i <= 6; i++) {
                missed.push('missed ' + i);
                await say(alice, 'missed ' + i);
            }
            await until('alice has all', () => hasLine(alice, 'missed 6'));
            await sleep(700); // bob's reconnect attempts meanwhile fail (offline)
            assert(!(await hasLine(bob, 'missed 1')), 'bob got a message while offline');
            const before = await bob.evaluate(() => window.roomcast.attempt);
            assert(before >= 1, 'bob made no reconnect attempt');
            await cdp.send('Network.emulateNetworkConditions',
                { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
            await until('bob back', () => hasLine(bob, 'missed 6'), 20000);
            const b = await lines(bob);
            const got = b.filter((l) => l.text.startsWith('missed ')).map((l) => l.text);
            assert(JSON.stringify(got) === JSON.stringify(missed),
                'bob shows ' + JSON.stringify(got));
            const seqs = b.map((l) => l.seq);
            for (let i = 1; i < seqs.length; i++)
                assert(seqs[i] === seqs[i - 1] + 1, 'bob seqs not consecutive: ' + seqs);
            const banner = await bob.$eval('#banner', (e) => e.hidden);
            assert(banner, 'bob shows a missing-messages banner after a full recovery');
            await cdp.detach();
        });

        await test('the script reloads while the pages stay open', async () => {
            const gen0 = (await getJson(env.admin, '/stats')).generation;
            const attempts0 = await alice.evaluate(() => window.roomcast.attempt);
            fs.appendFileSync(script, '\n-- reloaded by 80_browser\n');
            srv.proc.kill('SIGHUP');
            await until('generation up', async () =>
                (await getJson(env.admin, '/stats')).generation > gen0);
            await say(alice, 'after reload');
            await until('bob after reload', () => hasLine(bob, 'after reload'));
            const st = await alice.$eval('#state', (e) => e.dataset.state);
            assert(st === 'open', 'alice state ' + st);
            const attempts = await alice.evaluate(() => window.roomcast.attempt);
            assert(attempts === attempts0 && attempts === 0, 'alice reconnected on a reload');
        });

        await test('the server restarts while the pages stay open', async () => {
            problems.push(...(await stopServer(srv)));
            await until('pages notice', async () =>
                (await alice.$eval('#state', (e) => e.dataset.state)) !== 'open' &&
                (await bob.$eval('#state', (e) => e.dataset.state)) !== 'open');
            srv = await startChat(env);
            await until('alice reconnected', () =>
                alice.$eval('#state', (e) => e.dataset.state === 'open'), 20000);
            await until('bob reconnected', () =>
                bob.$eval('#state', (e) => e.dataset.state === 'open'), 20000);
            // Memory history is gone with the old process: the client says so.
            await until('reset noticed', () => bob.$eval('#banner', (e) => !e.hidden &&
                /history was reset/.test(e.textContent)));
            await until('rejoined', () => alice.evaluate(() => window.roomcast.pending.size === 0));
            await say(alice, 'after restart');
            await until('bob after restart', () => hasLine(bob, 'after restart'));
            const b = await lines(bob);
            assert(b.filter((l) => l.text === 'after restart').length === 1, 'duplicate line');
            // a backend publish through the HTTP API shows up like any message
            const r = await post(env.admin, '/api/publish', TOKEN,
                { room_id: 'lobby', content: 'from the backend' });
            assert(r.status === 200 && r.body.seq > 0, 'publish ' + JSON.stringify(r));
            await until('api message', () => hasLine(bob, 'from the backend'));
            const last = (await lines(bob)).pop();
            assert(last.sender === 'server' && last.seq === r.body.seq, JSON.stringify(last));
        });

        fs.mkdirSync(SHOTS, { recursive: true });
        await test('screenshot of the demo page', async () => {
            await bob.$eval('#banner', (e) => (e.hidden = true));
            await say(bob, 'Looks good from here!');
            await until('alice sees', () => hasLine(alice, 'Looks good from here!'));
            const file = path.join(SHOTS, 'demo.png');
            await alice.screenshot({ path: file });
            assert(fs.statSync(file).size > 10000, 'small screenshot');
        });

        await test('a room with more history than kept: the newest, then older pages with before', async () => {
            // 130 messages through the HTTP API; the memory store keeps the last 100.
            const room = 'archive';
            for (let i = 1; i <= 130; i++) {
                const r = await fetch('http://127.0.0.1:' + env.admin + '/api/publish', {
                    method: 'POST',
                    headers: { Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json' },
                    body: JSON.stringify({ room_id: room, content: 'old ' + i }),
                });
                assert(r.status === 200, 'publish ' + i + ': ' + r.status);
            }
            const carol = await openChat(browser, env, 'carol');
            await carol.bringToFront();
            await carol.type('#join-room', room);
            await carol.keyboard.press('Enter');
            // joined says recovered:false (trimmed): the page shows the newest 50
            await until('carol sees the newest', () => hasLine(carol, 'old 130'));
            const inOrder = (got, from, n) => got.length === n &&
                got.every((l, i) => l.seq === from + i && l.text === 'old ' + (from + i));
            let got = await lines(carol);
            assert(inOrder(got, 81, 50), 'first view ' + JSON.stringify(got.slice(0, 2)) + '+' + got.length);
            assert(await carol.$eval('#older', (e) => !e.hidden), 'no older button');
            await carol.click('#older');
            // history before 81: 31..80, above the rest
            await until('older shown', () => hasLine(carol, 'old 31'));
            got = await lines(carol);
            assert(inOrder(got, 31, 100), 'after paging ' + JSON.stringify(got.slice(0, 2)) + '+' + got.length);
            // the store has nothing before 31: the button goes away, nothing is added
            await carol.click('#older');
            await until('no older left', () => carol.$eval('#older', (e) => e.hidden));
            assert(inOrder(await lines(carol), 31, 100), 'nothing added');
            await carol.close();
        });

        await test('the dashboard shows what /stats says', async () => {
            // Some traffic first, so the chart and the busiest rooms have something to show.
            const dash = await browser.newPage();
            await dash.setViewport({ width: 1200, height: 760 });
            await dash.goto('http://127.0.0.1:' + env.admin + '/', { waitUntil: 'load' });
            for (let i = 0; i < 30; i++) {
                for (const room of ['lobby', 'support', 'random'].slice(0, 1 + (i % 3))) {
                    const r = await post(env.admin, '/api/publish', TOKEN,
                        { room_id: room, content: 'load ' + i });
                    assert(r.status === 200, 'publish ' + JSON.stringify(r));
                }
                await sleep(100);
            }
            // two samples, so the per-worker rates are filled in
            await until('dashboard live', () => dash.evaluate(() =>
                document.getElementById('status').textContent === 'live'));
            await sleep(2200); // the rates settle: nothing is published now
            const before = await getJson(env.admin, '/stats');
            const shown = await dash.evaluate(() => {
                const o = {};
                for (const e of document.querySelectorAll('[data-k]')) o[e.dataset.k] = e.dataset.value;
                o.workers = document.querySelectorAll('#workers tbody tr').length;
                o.rooms = [...document.querySelectorAll('#rooms tbody tr td:first-child')]
                    .map((e) => e.textContent);
                o.chart = document.querySelectorAll('#chart path').length;
                return o;
            });
            const after = await getJson(env.admin, '/stats');
            const between = (k, v, a, b) => assert(Number(v) >= a && Number(v) <= b,
                k + ': dashboard ' + v + ', /stats ' + a + '..' + b);
            between('active_connections', shown.active_connections, 2, 2);
            assert(before.active_connections === 2 && after.active_connections === 2,
                'stats connections ' + before.active_connections);
            between('rooms_total', shown.rooms_total, before.rooms_total, after.rooms_total);
            between('generation', shown.generation, before.generation, after.generation);
            between('msgs_in_total', shown.msgs_in_total, before.totals.msgs_in_total - 50,
                after.totals.msgs_in_total);
            assert(Number(shown.msgs_in_total) > 0, 'no messages shown');
            between('msgs_out_total', shown.msgs_out_total, before.totals.msgs_out_total - 100,
                after.totals.msgs_out_total);
            between('reloads_total', shown.reloads_total, before.totals.reloads_total,
                after.totals.reloads_total);
            assert(shown.workers === before.workers, 'worker rows ' + shown.workers);
            assert(shown.rooms.includes('lobby'), 'busiest rooms ' + shown.rooms);
            assert(shown.chart === 3, 'chart lines ' + shown.chart);
            const file = path.join(SHOTS, 'dashboard.png');
            await dash.screenshot({ path: file });
            assert(fs.statSync(file).size > 10000, 'small screenshot');
            await dash.close();
        });
    } finally {
        await browser.close();
        problems.push(...(await stopServer(srv)));
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    finish(problems);
}

runMain(main);
