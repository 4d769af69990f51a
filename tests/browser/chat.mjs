// Headless-browser test of the WebRSF chat client (src/webrsf/web) against a running lab.
// bob and carol log in from two browser contexts and chat: delivery and display ticks,
// the typing indicator, a reply, a page reload that loses nothing, and the past conversation
// back after logging out and in again; then bob's buddy list follows alice (an rcslab UE)
// going away and offline ("last seen").
// Run by scripts/test-browser.sh; by hand: WEBRSF_URL=http://127.0.0.1:8080 node tests/browser/chat.mjs
import { chromium } from 'playwright-core';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BASE = process.env.WEBRSF_URL || 'http://127.0.0.1:8080';
const WAIT = 10_000;          // every single wait is bounded by this
const WHOLE_TEST = 120_000;   // and the whole run by this
const RCSLAB = process.env.RCSLAB || 'target/debug/rcslab';

let step = 'launch';
let browser = null;
const pages = {};
const problems = [];          // uncaught exceptions in the client: any one fails the test
const consoleLog = [];        // the pages' console errors, printed on failure
const events = [];            // the notifications each page handled (app.js logs them), idem

// Records every data-status a message element ever shows, so a "delivered" that is
// replaced by "displayed" a millisecond later still counts as seen. Records of one batch
// carry the old values, so the value each change set is the next record's old value.
function recordStatuses() {
  window.__statusLog = [];
  const seen = new WeakSet();
  const isMessage = (n) => n instanceof Element && n.matches('[data-testid="message"]');
  const textOf = (el) => el.querySelector('[data-testid="message-text"]')?.textContent ?? '';
  new MutationObserver((records) => {
    const changes = new Map(); // element -> its attribute records in this batch
    for (const r of records) {
      if (r.type === 'attributes' && isMessage(r.target)) {
        changes.set(r.target, [...(changes.get(r.target) || []), r]);
      }
    }
    for (const r of records) {
      if (r.type === 'childList') {
        for (const n of r.addedNodes) {
          if (!isMessage(n) || seen.has(n)) continue; // a re-render moves elements: not a change
          seen.add(n);
          const later = changes.get(n);
          window.__statusLog.push([textOf(n), later ? later[0].oldValue : n.dataset.status]);
        }
      } else if (isMessage(r.target)) {
        seen.add(r.target);
        const all = changes.get(r.target);
        const next = all[all.indexOf(r) + 1];
        window.__statusLog.push([textOf(r.target), next ? next.oldValue : r.target.dataset.status]);
      }
    }
  }).observe(document, {
    subtree: true, childList: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-status'],
  });
}

async function openAs(browser, user, password, { wrongPasswordFirst = false } = {}) {
  const context = await browser.newContext();
  await context.addInitScript(recordStatuses);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  pages[user] = page;
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleLog.push(`${user}: ${m.text()}`);
    if (m.type() === 'debug') events.push(`${user}: ${m.text()}`);
  });
  step = `${user} opens ${BASE}`;
  await page.goto(BASE + '/', { timeout: WAIT });
  if (wrongPasswordFirst) {
    step = `${user} is refused with a wrong password`;
    await login(page, user, 'not-' + password);
    await page.getByTestId('error').filter({ hasText: /wrong|password|401/i }).waitFor();
    if (await page.getByTestId('login-form').isHidden()) throw new Error('a wrong password logged in');
  }
  step = `${user} logs in`;
  await login(page, user, password);
  await page.getByTestId('compose-form').waitFor();
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  return page;
}

async function login(page, user, password) {
  await page.getByTestId('login-user').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

function message(page, direction, text) {
  return page.locator(`[data-testid="message"][data-direction="${direction}"]`)
    .filter({ has: page.locator('[data-testid="message-text"]', { hasText: text }) });
}

async function waitStatus(page, text, status) {
  await message(page, 'out', text).and(page.locator(`[data-status="${status}"]`)).waitFor();
}

async function send(page, text) {
  await page.getByTestId('compose-input').fill(text);
  await page.getByTestId('send').click();
}

// `rcslab ue --user USER ARGS...` against the lab (its default P-CSCF), bounded by WAIT.
async function rcslabUe(user, args) {
  await promisify(execFile)(RCSLAB, ['ue', '--user', user, ...args], { timeout: WAIT });
}

function buddy(page, user, state) {
  return page.locator(`[data-testid="buddy-${user}"][data-state="${state}"]`);
}

async function statusLog(page, text) {
  return (await page.evaluate(() => window.__statusLog)).filter(([t]) => t === text).map(([, s]) => s);
}

async function run() {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: WAIT * 3,
  });
  try {
    const bob = await openAs(browser, 'bob', 'bob-secret');
    const carol = await openAs(browser, 'carol', 'carol-secret', { wrongPasswordFirst: true });

    step = 'bob starts a chat with carol and sends "hello carol"';
    await bob.getByTestId('new-chat-peer').fill('carol');
    await bob.getByTestId('new-chat-start').click();
    await send(bob, 'hello carol');
    // "sent" may already be overtaken by a report: any of the three will do here
    await message(bob, 'out', 'hello carol')
      .and(bob.locator('[data-status="sent"], [data-status="delivered"], [data-status="displayed"]')).waitFor();

    step = 'carol sees "hello carol" on screen';
    await message(carol, 'in', 'hello carol').waitFor({ state: 'visible' });
    await carol.getByTestId('conversation-bob').waitFor();

    step = 'bob sees the displayed tick on "hello carol" (carol has it on screen)';
    await waitStatus(bob, 'hello carol', 'displayed');
    step = 'bob saw the delivered tick before the displayed one';
    const seen = await statusLog(bob, 'hello carol');
    const d = seen.indexOf('delivered');
    if (d < 0 || seen.indexOf('displayed', d) < 0) {
      throw new Error(`status sequence of "hello carol" on bob's page was [${seen.join(', ')}]`);
    }

    step = 'carol types: bob sees "carol is typing…"';
    await carol.getByTestId('compose-input').fill('hi bo');
    await bob.getByTestId('typing').filter({ hasText: 'carol is typing' }).waitFor({ state: 'visible' });

    step = 'carol replies "hi bob": bob sees it and the typing indicator goes';
    await send(carol, 'hi bob');
    await message(bob, 'in', 'hi bob').waitFor({ state: 'visible' });
    await bob.getByTestId('typing').waitFor({ state: 'hidden' });
    await waitStatus(carol, 'hi bob', 'displayed');

    step = 'carol reloads the page and still sees the conversation';
    await carol.reload({ timeout: WAIT });
    await carol.locator('[data-testid="connection"][data-state="open"]').waitFor();
    await message(carol, 'in', 'hello carol').waitFor({ state: 'visible' });
    await message(carol, 'out', 'hi bob').waitFor({ state: 'visible' });

    step = 'bob sends "after the reload": carol receives it, bob sees it displayed';
    await send(bob, 'after the reload');
    await message(carol, 'in', 'after the reload').waitFor({ state: 'visible' });
    await waitStatus(bob, 'after the reload', 'displayed');

    step = 'a message sent while carol reloads is not lost';
    const reloading = carol.reload({ timeout: WAIT });
    await send(bob, 'during the reload');
    await reloading;
    await message(carol, 'in', 'during the reload').waitFor({ state: 'visible' });
    await waitStatus(bob, 'during the reload', 'displayed');
    for (const text of ['hello carol', 'after the reload', 'during the reload']) {
      const n = await message(carol, 'in', text).count();
      if (n !== 1) throw new Error(`carol shows "${text}" ${n} times after the reloads`);
    }

    step = 'carol logs out and in again: the conversation with bob is back from T-IM\'s history, each message once';
    await carol.getByTestId('logout').click();
    await carol.getByTestId('login-form').waitFor();
    await login(carol, 'carol', 'carol-secret');
    await carol.locator('[data-testid="connection"][data-state="open"]').waitFor();
    await carol.getByTestId('conversation-bob').click();
    await message(carol, 'out', 'hi bob').waitFor({ state: 'visible' });
    for (const text of ['hello carol', 'after the reload', 'during the reload']) {
      await message(carol, 'in', text).first().waitFor({ state: 'visible' });
      const n = await message(carol, 'in', text).count();
      if (n !== 1) throw new Error(`carol shows "${text}" ${n} times after logging in again`);
    }

    step = 'bob\'s buddy list shows alice and carol';
    await bob.getByTestId('buddy-alice').waitFor();
    await bob.getByTestId('buddy-carol').waitFor();

    step = 'alice (rcslab ue listen) comes online: bob\'s buddy list shows it without a reload';
    // A UE that stays registered publishes itself open; the PS shows a user with no
    // registration offline, so alice's `status` commands need this one running beside them.
    const listen = spawn(RCSLAB, ['ue', '--user', 'alice', 'listen'], { stdio: 'ignore' });
    process.on('exit', () => listen.kill('SIGKILL'));
    await buddy(bob, 'alice', 'online').waitFor();

    step = 'alice (rcslab ue) goes away, "lunch": bob\'s buddy list shows it without a reload';
    await rcslabUe('alice', ['status', 'away', 'lunch']);
    await buddy(bob, 'alice', 'away').filter({ hasText: 'lunch' }).waitFor();

    step = 'alice stops listening (she de-registers): bob sees when she was last seen';
    listen.kill('SIGINT');
    await buddy(bob, 'alice', 'offline').filter({ hasText: /last seen/ }).waitFor();

    step = 'no script errors in either page';
    if (problems.length) throw new Error(problems.join('\n'));
  } catch (e) {
    const dir = mkdtempSync(join(tmpdir(), 'webrsf-browser-'));
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
  console.error(`browser test: FAIL: still running after ${WHOLE_TEST / 1000} s at step: ${step}`);
  const bye = () => process.exit(1);
  setTimeout(bye, 5000);
  (browser ? browser.close() : Promise.resolve()).finally(bye);
}, WHOLE_TEST);

try {
  await run();
  console.log('browser test: ok (login, chat, delivered/displayed ticks, typing, reply, reload without loss, history after logging in again, buddies away and last seen)');
} catch (e) {
  console.error(`browser test: FAIL at step: ${step}\n${e.message}`);
  if (problems.length && !step.startsWith('no script errors')) console.error('uncaught errors in the pages:\n' + problems.join('\n'));
  if (consoleLog.length) console.error('console errors in the pages:\n' + consoleLog.join('\n'));
  if (events.length) console.error('notifications the pages handled:\n' + events.join('\n'));
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
}
