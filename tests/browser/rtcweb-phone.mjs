// One Chromium page of the patent's RTCWeb gateway (its own page, fake microphone) in a call
// with a phone through the gateway's media bridge. Driven by tests/e2e/rtcweb_phones.rs, which
// starts the lab, baresip and a capture; it prints one JSON line per step on stdout:
//   {"ready":true}                        logged in (MODE=answer: answering automatically)
//   {"connected":true}                    InCall and RTCPeerConnection "connected"
//   {"sent":N,"received":N,"codec":"..."} getStats() after HOLD_MS of audio
//   {"done":"Hangup"}                     the call ended (MODE=call: the page hung up;
//                                         MODE=answer: the phone did)
//   {"error":"..."}                       anything else, then exit 1
// By hand: RTCWEB_URL=http://127.0.0.1:8082 CALLEE=sip:bob@ims.lab node tests/browser/rtcweb-phone.mjs
import { launch, until as untilIn } from './rtcweb-common.mjs';

const URL_ = process.env.RTCWEB_URL || 'http://127.0.0.1:8082';
const MODE = process.env.MODE || 'call';
const CALLEE = process.env.CALLEE || 'sip:bob@ims.lab';
const USER = process.env.WEB_USER || 'alice';
const PASSWORD = process.env.WEB_PASSWORD || `${USER}-secret`;
const HOLD_MS = Number(process.env.HOLD_MS || 4000);
const WAIT = 20_000;

const say = (v) => console.log(JSON.stringify(v));
let browser = null;

const until = (page, what, fn) => untilIn(page, what, fn, null, WAIT);

async function run() {
  browser = await launch(WAIT);
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(WAIT);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(URL_ + '/');
  await page.fill('#user', USER);
  await page.fill('#password', PASSWORD);
  await page.click('#login-btn');
  await until(page, 'registered', () => window.__rtc.registered);
  if (MODE === 'answer') await page.check('#auto');
  say({ ready: true });
  if (MODE === 'call') {
    await page.fill('#to', CALLEE);
    await page.click('#call');
  }
  await until(page, 'InCall', () => window.__rtc.state === 'InCall');
  await until(page, 'media connected', () => window.__rtc.pc && window.__rtc.pc.connectionState === 'connected');
  say({ connected: true });
  await new Promise((res) => setTimeout(res, HOLD_MS));
  const stats = await page.evaluate(async () => {
    const out = { codecs: {} };
    (await window.__rtc.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.sent = s.packetsSent;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') { out.received = s.packetsReceived; out.codecId = s.codecId; }
      if (s.type === 'codec') out.codecs[s.id] = s.mimeType;
    });
    return { sent: out.sent || 0, received: out.received || 0, codec: out.codecs[out.codecId] || null };
  });
  say(stats);
  if (MODE === 'call') await page.click('#hangup');
  await until(page, 'Hangup', () => window.__rtc.state === 'Hangup');
  if (problems.length) throw new Error(problems.join('\n'));
  say({ done: 'Hangup' });
}

const whole = setTimeout(() => { say({ error: 'the whole run took over 90 s' }); process.exit(1); }, 90_000);
try {
  await run();
} catch (e) {
  say({ error: String(e && e.stack || e) });
  process.exitCode = 1;
} finally {
  clearTimeout(whole);
  if (browser) await browser.close().catch(() => {});
}
