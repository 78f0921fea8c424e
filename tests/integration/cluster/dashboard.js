// dashboard.js ADMIN_PORT up|down - run by cluster.py: a clustered node's
// admin dashboard (GET / on the admin port) in headless Chromium (Debian's
// /usr/bin/chromium, npm puppeteer-core) shows the bus state and the nodes
// that the node's /stats has ("bus": kind, state, nodes). `up`: the state
// shown is "up", not marked down, and lists every node of /stats; `down`
// (Redis is stopped): the state shown is /stats's ("down" or "connecting")
// and marked down. Prints one line; exits 1 on a mismatch.
'use strict';

const { SLOW, requireChromium, sleep, getJson } = require('../rcnode');

// A helper of cluster.py: its SKIP line has no `0 passed` tally.
const { puppeteer, CHROMIUM } = requireChromium(false);
const [port, want] = process.argv.slice(2);

const stats = () => getJson(Number(port), '/stats');

function shown(page) {
    return page.evaluate(() => {
        const st = document.getElementById('bus-state');
        return {
            text: document.getElementById('cluster').textContent,
            state: st ? st.textContent : null,
            down: st ? st.classList.contains('down') : null,
            nodes: [...document.querySelectorAll('#nodes li')].map((e) => e.textContent),
        };
    });
}

async function main() {
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    try {
        const page = await browser.newPage();
        await page.goto('http://127.0.0.1:' + port + '/', { waitUntil: 'load' });
        // the page refreshes every second: the state it shows catches up
        // with /stats within a few refreshes
        const end = Date.now() + 10000 * SLOW;
        let s, d, a;
        for (;;) {
            s = await stats();
            d = await shown(page);
            a = await stats();
            const sameNodes = (x) =>
                JSON.stringify([...x.bus.nodes].sort()) === JSON.stringify(d.nodes);
            const ok =
                d.state !== null &&
                (d.state === s.bus.state || d.state === a.bus.state) &&
                (sameNodes(s) || sameNodes(a)) &&
                (want === 'up' ? d.state === 'up' && !d.down : d.state !== 'up' && d.down);
            if (ok) break;
            if (Date.now() > end) {
                console.log('FAIL: wanted ' + want + '; dashboard ' + JSON.stringify(d) +
                    '; /stats bus ' + JSON.stringify(s.bus) + ' then ' + JSON.stringify(a.bus));
                process.exitCode = 1;
                return;
            }
            await sleep(200);
        }
        if (s.bus.kind !== 'redis' || !d.text.startsWith('redis bus ')) {
            console.log('FAIL: kind ' + s.bus.kind + ', shown ' + JSON.stringify(d.text));
            process.exitCode = 1;
            return;
        }
        if (want === 'up' && d.nodes.length < 2) {
            console.log('FAIL: a cluster of one? ' + JSON.stringify(d));
            process.exitCode = 1;
            return;
        }
        console.log('bus ' + d.state + ' and ' + d.nodes.length + ' nodes shown as in /stats');
    } finally {
        await browser.close();
    }
}

main().catch((e) => {
    console.log('FAIL: ' + (e && e.stack ? e.stack : e));
    process.exit(1);
});
