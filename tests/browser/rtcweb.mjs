// Headless-browser test of the patent's RTCWeb gateway (seed 001): two Chromium pages load the
// gateway's own page (http://127.0.0.1:8082/), log alice and bob in (the gateway registers them
// in IMS), and alice calls bob through the gateway and the IMS core (OFFER -> INVITE with
// 100rel ... ANSWER -> ACK); both RTCPeerConnections reach "connected" (fake audio devices,
// ICE on loopback). Then alice's page reloads mid-call: figure 7 Reloading -> InCall, and bob's
// side sees no BYE. Last alice hangs up and bob's page ends the call.
// Run by scripts/test-rtcweb.sh; by hand: RTCWEB_URL=http://127.0.0.1:8082 node tests/browser/rtcweb.mjs
import { launch, until as untilIn } from './rtcweb-common.mjs';

const URL_ = process.env.RTCWEB_URL || 'http://127.0.0.1:8082';
const WAIT = 15_000;          // every single wait is bounded by this
const WHOLE_TEST = 90_000;    // and the whole run by this

let step = 'launch';
let browser = null;
const problems = [];
const consoleLog = [];

async function open(user, password) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  page.on('console', (m) => consoleLog.push(`${user}: ${m.type()}: ${m.text()}`));
  await page.goto(URL_ + '/');
  step = `${user} logs in`;
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('#login-btn');
  await page.waitForFunction(() => window.__rtc.registered);
  return page;
}

const until = (page, what, fn, arg) => untilIn(page, what, fn, arg, WAIT);

async function run() {
  browser = await launch(WAIT * 2);
  try {
    const alice = await open('alice', 'alice-secret');
    const bob = await open('bob', 'bob-secret');
    await bob.check('#auto');

    step = 'alice calls bob through the gateway: both InCall, both media connected';
    await alice.fill('#to', 'sip:bob@ims.lab');
    await alice.click('#call');
    await until(alice, 'alice InCall', () => window.__rtc.state === 'InCall');
    await until(bob, 'bob InCall', () => window.__rtc.state === 'InCall');
    await until(alice, 'alice media connected', () => window.__rtc.pc && window.__rtc.pc.connectionState === 'connected');
    await until(bob, 'bob media connected', () => window.__rtc.pc && window.__rtc.pc.connectionState === 'connected');

    step = 'alice reloads her page mid-call: Reloading -> InCall, no BYE at bob';
    await alice.reload();
    await until(alice, 'alice registered again', () => window.__rtc.registered);
    await until(alice, 'alice InCall after the reload', () => window.__rtc.state === 'InCall');
    const bobEvents = await bob.evaluate(() => window.__rtc.events);
    if (bobEvents.some((e) => e.startsWith('< BYE'))) throw new Error(`bob got a BYE: ${bobEvents.join('\n')}`);
    if ((await bob.evaluate(() => window.__rtc.state)) !== 'InCall') throw new Error('bob left InCall');
    if (!(await alice.evaluate(() => window.__rtc.events.some((e) => e.startsWith('< STATE InCall'))))) {
      throw new Error('alice got no STATE InCall');
    }

    step = 'alice hangs up: bob sees the call end';
    await alice.click('#hangup');
    await until(bob, 'bob Hangup', () => window.__rtc.state === 'Hangup');
    await until(alice, 'alice Hangup', () => window.__rtc.state === 'Hangup');

    step = 'no script errors in either page';
    if (problems.length) throw new Error(problems.join('\n'));
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.error(`rtcweb test: FAIL: still running after ${WHOLE_TEST / 1000} s at step: ${step}`);
  const bye = () => process.exit(1);
  setTimeout(bye, 5000);
  (browser ? browser.close() : Promise.resolve()).finally(bye);
}, WHOLE_TEST);

try {
  await run();
  console.log('rtcweb test: ok (two pages call through the gateway and IMS, media connected; a reload keeps the call; hang-up)');
  clearTimeout(watchdog);
} catch (e) {
  console.error(`rtcweb test: FAIL at step: ${step}\n${e.stack || e}`);
  console.error('--- page console (last 60 lines) ---\n' + consoleLog.slice(-60).join('\n'));
  clearTimeout(watchdog);
  process.exit(1);
}
