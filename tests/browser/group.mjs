// Headless-browser test of group chats in the WebRSF client (src/webrsf/web) against a running
// lab: alice, bob and carol log in from three browser contexts; alice makes a group with bob
// and carol; each writes once and all three see every message with its writer; alice sees
// who read hers ("Read by bob, carol", from their displayed IMDNs); every members list shows
// the three in the chat (the conference roster), then alice removes carol and adds her back,
// and carol leaving shows in the others' lists.
// Run by scripts/test-browser.sh; by hand: WEBRSF_URL=http://127.0.0.1:8080 node tests/browser/group.mjs
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BASE = process.env.WEBRSF_URL || 'http://127.0.0.1:8080';
const WAIT = 10_000;          // every single wait is bounded by this
const WHOLE_TEST = 120_000;   // and the whole run by this
const USERS = ['alice', 'bob', 'carol'];

let step = 'launch';
let browser = null;
const pages = {};
const problems = [];          // uncaught exceptions in the client: any one fails the test
const consoleLog = [];        // the pages' console errors, printed on failure
const events = [];            // the notifications each page handled (app.js logs them), idem

async function openAs(user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  pages[user] = page;
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleLog.push(`${user}: ${m.text()}`);
    if (m.type() === 'debug') events.push(`${user}: ${m.text()}`);
  });
  step = `${user} opens ${BASE} and logs in`;
  await page.goto(BASE + '/', { timeout: WAIT });
  await page.getByTestId('login-user').fill(user);
  await page.getByTestId('login-password').fill(`${user}-secret`);
  await page.getByTestId('login-submit').click();
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  return page;
}

function groupMessage(page, sender, text) {
  return page.locator(`[data-testid="group-message"][data-sender="${sender}"]`)
    .filter({ has: page.locator('[data-testid="group-message-text"]', { hasText: text }) });
}

function member(page, user, status) {
  const sel = status ? `[data-testid="member-${user}"][data-status="${status}"]` : `[data-testid="member-${user}"]`;
  return page.locator(sel);
}

async function sendGroup(page, text) {
  await page.getByTestId('group-compose-input').fill(text);
  await page.getByTestId('group-send').click();
}

async function run() {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: WAIT * 3,
  });
  try {
    for (const u of USERS) await openAs(u);
    const p = (u) => pages[u];

    // A subject of its own, so that a second run against the same lab finds its group.
    const subject = `Lunch ${Date.now() % 100000}`;
    step = `alice creates the group "${subject}" with bob and carol`;
    await p('alice').getByTestId('new-group-subject').fill(subject);
    await p('alice').getByTestId('new-group-members').fill('bob, carol');
    await p('alice').getByTestId('new-group-create').click();
    await p('alice').getByTestId('group-name').filter({ hasText: subject }).waitFor();
    const gid = await p('alice').getByTestId('group-name').getAttribute('data-group-id');
    const groupButton = (u) => p(u).locator(`[data-testid="group"][data-group-id="${gid}"]`);

    for (const u of ['bob', 'carol']) {
      step = `${u} sees "${subject}" in the group list and opens it`;
      await groupButton(u).filter({ hasText: subject }).click();
      await p(u).getByTestId('group-name').filter({ hasText: subject }).waitFor();
    }

    for (const u of USERS) {
      step = `${u}'s members list shows alice, bob and carol in the chat`;
      for (const m of USERS) await member(p(u), m, 'connected').waitFor();
    }

    const texts = { alice: 'hello group, alice here', bob: 'bob says hi', carol: 'carol waves' };
    for (const writer of USERS) {
      step = `${writer} writes "${texts[writer]}": the two others see it with its writer`;
      await sendGroup(p(writer), texts[writer]);
      for (const reader of USERS.filter((x) => x !== writer)) {
        await groupMessage(p(reader), writer, texts[writer]).waitFor({ state: 'visible' });
        const who = await groupMessage(p(reader), writer, texts[writer])
          .getByTestId('group-message-sender').textContent();
        if (who !== writer) throw new Error(`${reader} shows "${texts[writer]}" as from "${who}"`);
      }
    }

    step = 'every page shows the three messages, each once';
    for (const u of USERS) {
      for (const w of USERS) {
        const n = await groupMessage(p(u), w, texts[w]).count();
        if (n !== 1) throw new Error(`${u} shows "${texts[w]}" ${n} times`);
      }
    }

    step = 'alice sees her message read by bob and carol';
    await groupMessage(p('alice'), 'alice', texts.alice)
      .locator('[data-testid="read-by"][data-read-by="bob,carol"]').waitFor();
    step = 'bob sees his message read by alice and carol';
    await groupMessage(p('bob'), 'bob', texts.bob)
      .locator('[data-testid="read-by"][data-read-by="alice,carol"]').waitFor();

    step = 'alice removes carol from the group';
    await p('alice').getByTestId('remove-member-carol').click();
    step = 'alice and bob see carol gone from the members list';
    for (const u of ['alice', 'bob']) await member(p(u), 'carol', 'connected').waitFor({ state: 'detached' });
    step = 'alice adds carol back: everyone sees her in the chat again';
    await p('alice').getByTestId('add-member').fill('carol');
    await p('alice').getByTestId('add-member-submit').click();
    for (const u of ['alice', 'bob']) await member(p(u), 'carol', 'connected').waitFor({ timeout: WAIT });
    await groupButton('carol').click();

    step = 'carol leaves the group: alice and bob see her leave the members list';
    await p('carol').getByTestId('group-leave').click();
    for (const u of ['alice', 'bob']) {
      await member(p(u), 'carol', 'connected').waitFor({ state: 'detached' });
    }

    step = 'no script errors in any page';
    if (problems.length) throw new Error(problems.join('\n'));
  } catch (e) {
    const dir = mkdtempSync(join(tmpdir(), 'webrsf-group-'));
    for (const [user, page] of Object.entries(pages)) {
      await page.screenshot({ path: join(dir, `${user}.png`), timeout: 5000 }).catch(() => {});
    }
    e.message += `\n(screenshots in ${dir})`;
    throw e;
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  console.error(`group browser test: FAIL: still running after ${WHOLE_TEST / 1000} s at step: ${step}`);
  const bye = () => process.exit(1);
  setTimeout(bye, 5000);
  (browser ? browser.close() : Promise.resolve()).finally(bye);
}, WHOLE_TEST);

try {
  await run();
  console.log('group browser test: ok (three users in a group, every message with its writer, read by, the chairman removing a member and adding her back, a member leaving)');
} catch (e) {
  console.error(`group browser test: FAIL at step: ${step}\n${e.message}`);
  if (problems.length && !step.startsWith('no script errors')) console.error('uncaught errors in the pages:\n' + problems.join('\n'));
  if (consoleLog.length) console.error('console errors in the pages:\n' + consoleLog.join('\n'));
  if (events.length) console.error('notifications the pages handled:\n' + events.join('\n'));
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
}
