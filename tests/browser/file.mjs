// Headless-browser test of files in the WebRSF client (src/webrsf/web/files.js) against a
// running lab (RCC.07 file transfer via HTTP through the gateway): bob, in the browser,
// sends an image to carol, an rcslab UE (`rcslab ue --user carol listen --files DIR`), who
// gets the same bytes; bob's page shows the thumbnail the content server made and the
// "delivered" tick. Then alice (`rcslab ue --user alice sendfile`) sends bob an image: his
// page shows its thumbnail (loaded) and a download link that gives the same bytes.
// Run by scripts/test-browser.sh; by hand: WEBRSF_URL=http://127.0.0.1:8080 node tests/browser/file.mjs
import { chromium } from 'playwright-core';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BASE = process.env.WEBRSF_URL || 'http://127.0.0.1:8080';
const WAIT = 15_000;          // every single wait is bounded by this
const WHOLE_TEST = 120_000;   // and the whole run by this
const RCSLAB = process.env.RCSLAB || 'target/debug/rcslab';

let step = 'launch';
let browser = null;
const pages = {};
const problems = [];
const consoleLog = [];
const children = [];
const work = mkdtempSync(join(tmpdir(), 'webrsf-file-'));

// ---------- a PNG, made here (rcslab has no image generator) ----------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

// An RGB gradient of w×h with a pattern of `seed`.
function png(w, h, seed) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const i = row + 1 + x * 3;
      raw[i] = (x * 255) / w;
      raw[i + 1] = (y * 255) / h;
      raw[i + 2] = ((x ^ y) * seed) & 0xff;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// ---------- helpers ----------

// Ends a web user's gateway session (earlier browser tests leave theirs open), so the
// rcslab UE of that user is the only one registered.
async function logoutWeb(user) {
  const res = await fetch(`${BASE}/webrsf/v1/${user}/Session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ password: `${user}-secret` }),
  });
  if (!res.ok) throw new Error(`login of ${user} to log out: ${res.status}`);
  const { token } = await res.json();
  await fetch(`${BASE}/webrsf/v1/${user}/Session`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
}

// `rcslab ue --user USER listen --files DIR`: its stdout lines as they come.
function listen(user, dir) {
  const child = spawn(RCSLAB, ['ue', '--user', user, 'listen', '--files', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines = [];
  let waiters = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters = waiters.filter((w) => !w());
    }
  });
  child.stderr.on('data', (d) => consoleLog.push(`${user} listen: ${String(d).trim()}`));
  return {
    lines,
    // The first line `want` takes, within WAIT.
    line(want) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const l = lines.find(want);
          if (l !== undefined) { resolve(l); return true; }
          return false;
        };
        if (check()) return;
        waiters.push(check);
        setTimeout(() => reject(new Error(`no such line from ${user}'s listen within ${WAIT} ms; it printed:\n${lines.join('\n')}`)), WAIT);
      });
    },
  };
}

async function openAs(user) {
  const context = await browser.newContext({ acceptDownloads: true });
  // Whether an upload's progress bar was ever on the page (a local upload is quick).
  await context.addInitScript(() => {
    window.__sawProgress = false;
    new MutationObserver(() => {
      if (document.querySelector('[data-testid="file-progress"]')) window.__sawProgress = true;
    }).observe(document, { subtree: true, childList: true });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  pages[user] = page;
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') consoleLog.push(`${user}: ${m.text()}`); });
  step = `${user} opens ${BASE} and logs in`;
  await page.goto(BASE + '/', { timeout: WAIT });
  await page.getByTestId('login-user').fill(user);
  await page.getByTestId('login-password').fill(`${user}-secret`);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('compose-form').waitFor();
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  return page;
}

function fileMessage(page, direction, name) {
  return page.locator(`[data-testid="message"][data-direction="${direction}"]`)
    .filter({ has: page.locator('[data-testid="file-download"]', { hasText: name }) });
}

// True once the message's thumbnail <img> has loaded a real image.
async function thumbnailLoaded(page, direction, name) {
  const img = fileMessage(page, direction, name).locator('[data-testid="file-thumbnail"]');
  await img.waitFor();
  await img.evaluate((el, wait) => new Promise((resolve, reject) => {
    const t0 = Date.now();
    const poll = () => {
      if (el.complete && el.naturalWidth > 0) resolve();
      else if (Date.now() - t0 > wait) reject(new Error(`thumbnail not loaded (src ${el.src.slice(0, 40)})`));
      else setTimeout(poll, 50);
    };
    poll();
  }), WAIT);
}

async function run() {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: WAIT * 3,
  });
  try {
    step = 'earlier web sessions of alice, bob and carol end';
    for (const u of ['alice', 'bob', 'carol']) await logoutWeb(u);
    const bob = await openAs('bob');

    step = 'carol listens with an rcslab UE (files into a directory)';
    const inbox = join(work, 'carol');
    mkdirSync(inbox, { recursive: true });
    const carol = listen('carol', inbox);
    await bob.locator('[data-testid="buddy-carol"][data-state="online"]').waitFor();

    step = 'bob attaches sunset.png in the chat with carol: the page shows it with a preview and then sent';
    const sunset = png(480, 320, 7);
    await bob.getByTestId('new-chat-peer').fill('carol');
    await bob.getByTestId('new-chat-start').click();
    await bob.getByTestId('attach-input').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: sunset });
    await thumbnailLoaded(bob, 'out', 'sunset.png');
    await fileMessage(bob, 'out', 'sunset.png')
      .and(bob.locator('[data-status="sent"], [data-status="delivered"], [data-status="displayed"]')).waitFor();

    step = 'the upload showed a progress bar, gone once the file was through';
    if (!(await bob.evaluate(() => window.__sawProgress))) throw new Error('no progress bar was shown');
    await fileMessage(bob, 'out', 'sunset.png').getByTestId('file-progress').waitFor({ state: 'detached' });

    step = 'the file-info the gateway sent carried a thumbnail (made by the UE, kept by the content server)';
    await fileMessage(bob, 'out', 'sunset.png').locator('[data-testid="file"][data-thumbnail="yes"]').waitFor();

    step = 'carol\'s rcslab UE saves sunset.png with the same SHA-256';
    const want = sha256(sunset);
    const line = await carol.line((l) => l.startsWith('sip:bob@ims.lab: FILE sunset.png'));
    if (!line.includes(`(${sunset.length} bytes, ${want})`)) throw new Error(`carol printed "${line}", want ${sunset.length} bytes, ${want}`);
    if (sha256(readFileSync(join(inbox, 'sunset.png'))) !== want) throw new Error('the saved file differs');

    step = 'bob sees the delivered tick on sunset.png';
    await fileMessage(bob, 'out', 'sunset.png').and(bob.locator('[data-status="delivered"], [data-status="displayed"]')).waitFor();

    step = 'alice (rcslab ue sendfile) sends bob beach.png: it prints delivered once bob\'s page has it';
    const beach = png(640, 400, 13);
    const beachPath = join(work, 'beach.png');
    writeFileSync(beachPath, beach);
    const sent = promisify(execFile)(RCSLAB, ['ue', '--user', 'alice', 'sendfile', 'sip:bob@ims.lab', beachPath, '--timeout', '20'],
      { timeout: WAIT + 10_000 });

    step = 'bob\'s page shows beach.png from alice with its thumbnail loaded';
    await bob.getByTestId('conversation-alice').click();
    await fileMessage(bob, 'in', 'beach.png').waitFor({ state: 'visible' });
    await thumbnailLoaded(bob, 'in', 'beach.png');
    const { stdout } = await sent;
    if (!/^(delivered|displayed)/m.test(stdout)) throw new Error(`sendfile printed "${stdout.trim()}"`);

    step = 'bob\'s download link gives the bytes alice sent';
    const [download] = await Promise.all([
      bob.waitForEvent('download', { timeout: WAIT }),
      fileMessage(bob, 'in', 'beach.png').getByTestId('file-download').click(),
    ]);
    if (download.suggestedFilename() !== 'beach.png') throw new Error(`download named ${download.suggestedFilename()}`);
    const got = readFileSync(await download.path());
    if (sha256(got) !== sha256(beach)) throw new Error(`downloaded ${got.length} bytes that differ from the ${beach.length} sent`);

    if (process.env.WEBRSF_SHOTS) {
      await bob.screenshot({ path: join(process.env.WEBRSF_SHOTS, 'bob-from-alice.png') });
      await bob.getByTestId('conversation-carol').click();
      await bob.screenshot({ path: join(process.env.WEBRSF_SHOTS, 'bob-to-carol.png') });
    }

    step = 'no script errors in the page';
    if (problems.length) throw new Error(problems.join('\n'));
  } catch (e) {
    const dir = mkdtempSync(join(tmpdir(), 'webrsf-browser-'));
    for (const [user, page] of Object.entries(pages)) {
      await page.screenshot({ path: join(dir, `${user}.png`), timeout: 5000 }).catch(() => {});
    }
    e.message += `\n(screenshots in ${dir})`;
    throw e;
  } finally {
    for (const c of children) c.kill('SIGINT');
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.error(`browser file test: FAIL: still running after ${WHOLE_TEST / 1000} s at step: ${step}`);
  const bye = () => process.exit(1);
  setTimeout(bye, 5000);
  (browser ? browser.close() : Promise.resolve()).finally(bye);
}, WHOLE_TEST);

try {
  await run();
  console.log('browser file test: ok (an image from the page to an rcslab UE, same bytes, thumbnail, delivered; an image from an rcslab UE shown with its thumbnail, downloaded byte for byte)');
} catch (e) {
  console.error(`browser file test: FAIL at step: ${step}\n${e.message}`);
  if (consoleLog.length) console.error('console errors and UE output:\n' + consoleLog.join('\n'));
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
