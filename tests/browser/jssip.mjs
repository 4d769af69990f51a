// Headless-browser test of SIP over WebSocket (RFC 7118) at the P-CSCF with JsSIP itself:
// alice and bob each run JsSIP in a Chromium page, register challenge-first over
// ws://127.0.0.1:5066 and exchange MESSAGE both ways; then alice sends to carol, an rcslab UE
// (`rcslab ue --user carol listen`), and carol answers with `rcslab ue ... send`; last alice
// calls bob (INVITE/200/ACK through the core, fake audio devices) and hangs up.
// Run by scripts/test-jssip.sh; by hand: SIP_WS_URL=ws://127.0.0.1:5066 node tests/browser/jssip.mjs
import { chromium } from 'playwright-core';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const WS_URL = process.env.SIP_WS_URL || 'ws://127.0.0.1:5066';
// The pages load from the lab's own web server: Chromium's Local Network Access checks let a
// page on loopback open ws://127.0.0.1 (about:blank may not).
const PAGE_URL = (process.env.WEBRSF_URL || 'http://127.0.0.1:8080') + '/jssip-test';
const WAIT = 10_000;          // every single wait is bounded by this
const WHOLE_TEST = 60_000;    // and the whole run by this
const RCSLAB = process.env.RCSLAB || 'target/debug/rcslab';
const JSSIP = join(dirname(fileURLToPath(import.meta.url)), 'node_modules/jssip/lib/JsSIP.js');

// The jssip package ships CommonJS only (no browser bundle): this wraps lib/JsSIP.js and every
// module it requires (following a package's `browser` entry, as bundlers do) into one script
// that sets window.JsSIP. No bundler to install; the code the page runs is the package's own.
function bundle(entry) {
  const ids = new Map();
  const defs = [];
  const resolve = (from, spec) => {
    const req = createRequire(from);
    if (spec.startsWith('.')) return req.resolve(spec);
    const pkgJson = req.resolve(`${spec}/package.json`);
    const pkg = JSON.parse(readFileSync(pkgJson, 'utf8'));
    const main = typeof pkg.browser === 'string' ? pkg.browser : (pkg.main || 'index.js');
    return req.resolve(join(dirname(pkgJson), main));
  };
  const add = (file) => {
    if (ids.has(file)) return ids.get(file);
    const id = defs.length;
    ids.set(file, id);
    defs.push(null);
    let code = readFileSync(file, 'utf8');
    if (file.endsWith('.json')) code = `module.exports = ${code};`;
    const deps = {};
    for (const m of code.matchAll(/require\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      try { deps[m[1]] = add(resolve(file, m[1])); } catch (e) { /* not a module this code loads */ }
    }
    defs[id] = `[function (require, module, exports) {\n${code}\n}, ${JSON.stringify(deps)}]`;
    return id;
  };
  add(entry);
  return `window.JsSIP = (function () {
  const defs = [${defs.join(',\n')}];
  const cache = {};
  function load(id) {
    if (cache[id]) return cache[id].exports;
    const module = { exports: {} };
    cache[id] = module;
    const [fn, deps] = defs[id];
    fn((name) => {
      if (!(name in deps)) throw new Error('not bundled: ' + name);
      return load(deps[name]);
    }, module, module.exports);
    return module.exports;
  }
  return load(0);
})();`;
}
const JSSIP_SCRIPT = bundle(JSSIP);

let step = 'launch';
let browser = null;
const problems = [];
const consoleLog = [];        // the pages' console (JsSIP's debug output), printed on failure

// In the page: a JsSIP UA that registers and keeps every MESSAGE it receives.
function startUa({ url, user, password }) {
  return new Promise((resolve, reject) => {
    window.__got = [];
    JsSIP.debug.enable('JsSIP:*');
    const socket = new JsSIP.WebSocketInterface(url);
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${user}@ims.lab`,
      authorization_user: `${user}@ims.lab`,
      password,
      register: true,
      session_timers: false,
    });
    window.__ua = ua;
    ua.on('newMessage', (e) => {
      if (e.originator === 'remote') window.__got.push(`${e.request.from.uri.user}: ${e.request.body}`);
    });
    window.__sessions = [];
    ua.on('newRTCSession', (e) => {
      const s = e.session;
      const log = (what) => window.__sessions.push(`${e.originator}: ${what}`);
      for (const ev of ['progress', 'accepted', 'confirmed', 'ended', 'failed']) {
        s.on(ev, (x) => log(ev + (x && x.cause ? ` (${x.cause})` : '')));
      }
      if (e.originator === 'remote') {
        window.__incoming = s;
        s.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
      } else {
        window.__outgoing = s;
      }
    });
    ua.on('registered', () => resolve('registered'));
    ua.on('registrationFailed', (e) => reject(new Error(`registration failed: ${e.cause} ${e.response ? e.response.status_code : ''}`)));
    ua.start();
  });
}

function sendMessage({ to, text }) {
  return new Promise((resolve, reject) => {
    window.__ua.sendMessage(to, text, {
      eventHandlers: {
        succeeded: (e) => resolve(e.response.status_code),
        failed: (e) => reject(new Error(`MESSAGE failed: ${e.cause} ${e.response ? e.response.status_code : ''}`)),
      },
    });
  });
}

async function open(user, password) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  page.on('console', (m) => consoleLog.push(`${user}: ${m.type()}: ${m.text()}`));
  await page.goto(PAGE_URL);
  await page.addScriptTag({ content: JSSIP_SCRIPT });
  step = `${user} registers over ${WS_URL}`;
  await page.evaluate(startUa, { url: WS_URL, user, password });
  return page;
}

// In the page: a call's state history contains `what`.
async function callState(page, what) {
  await page.waitForFunction((w) => window.__sessions.includes(w), what, { timeout: WAIT })
    .catch(async (e) => {
      throw new Error(`${e.message}; the call's events: ${JSON.stringify(await page.evaluate(() => window.__sessions))}`);
    });
}

async function received(page, line) {
  await page.waitForFunction((l) => window.__got.includes(l), line, { timeout: WAIT });
}

async function run() {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
    timeout: WAIT * 3,
  });
  let listen = null;
  try {
    const alice = await open('alice', 'alice-secret');
    const bob = await open('bob', 'bob-secret');

    step = 'alice (JsSIP) sends MESSAGE to bob (JsSIP)';
    await alice.evaluate(sendMessage, { to: 'sip:bob@ims.lab', text: 'Hi bob, from JsSIP' });
    await received(bob, 'alice: Hi bob, from JsSIP');

    step = 'bob answers alice';
    await bob.evaluate(sendMessage, { to: 'sip:alice@ims.lab', text: 'Hi alice' });
    await received(alice, 'bob: Hi alice');

    step = 'carol (an rcslab UE) listens';
    listen = spawn(RCSLAB, ['ue', '--user', 'carol', 'listen'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let heard = '';
    listen.stdout.on('data', (d) => { heard += d; });
    listen.stderr.on('data', (d) => { heard += d; });
    const deadline = Date.now() + WAIT;
    while (!/registered|listening/i.test(heard) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

    step = 'alice (JsSIP) sends MESSAGE to carol (rcslab UE)';
    await alice.evaluate(sendMessage, { to: 'sip:carol@ims.lab', text: 'Hi carol, from the browser' });
    const until = Date.now() + WAIT;
    while (!heard.includes('Hi carol, from the browser') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    if (!heard.includes('Hi carol, from the browser')) throw new Error(`carol did not print the message; she said:\n${heard}`);

    step = 'carol (rcslab UE) sends to alice (JsSIP)';
    await promisify(execFile)(RCSLAB, ['ue', '--user', 'carol', 'send', 'sip:alice@ims.lab', 'Hi alice, from rcslab'], { timeout: WAIT })
      .catch((e) => { throw new Error(`rcslab ue send: ${e.message}\n${e.stdout || ''}${e.stderr || ''}`); });
    await alice.waitForFunction(() => window.__got.some((l) => l.includes('Hi alice, from rcslab')), null, { timeout: WAIT });

    step = 'alice calls bob: INVITE, 200, ACK through the core, both confirmed';
    await alice.evaluate(() => {
      window.__ua.call('sip:bob@ims.lab', {
        mediaConstraints: { audio: true, video: false },
        pcConfig: { iceServers: [] },
      });
    });
    await callState(bob, 'remote: confirmed');
    await callState(alice, 'local: confirmed');

    step = 'alice hangs up: bob sees the call end';
    await alice.evaluate(() => window.__outgoing.terminate());
    await callState(bob, 'remote: ended (Terminated)');
    await callState(alice, 'local: ended (Terminated)');

    step = 'no script errors in either page';
    if (problems.length) throw new Error(problems.join('\n'));
  } finally {
    if (listen) listen.kill('SIGINT');
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.error(`jssip test: FAIL: still running after ${WHOLE_TEST / 1000} s at step: ${step}`);
  const bye = () => process.exit(1);
  setTimeout(bye, 5000);
  (browser ? browser.close() : Promise.resolve()).finally(bye);
}, WHOLE_TEST);

try {
  await run();
  console.log('jssip test: ok (two JsSIP pages register over WebSocket and exchange MESSAGE; MESSAGE both ways with an rcslab UE; a call between the pages, hung up)');
} catch (e) {
  console.error(`jssip test: FAIL at step: ${step}\n${e.message}`);
  if (problems.length) console.error('errors in the pages:\n' + problems.join('\n'));
  if (consoleLog.length) console.error('the pages\' console (last 60 lines):\n' + consoleLog.slice(-60).join('\n'));
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
}
