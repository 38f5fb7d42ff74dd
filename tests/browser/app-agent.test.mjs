// The AI agent and Telegram in the app: alice links Telegram in settings (through the
// stand-in Bot API and the secret-checked webhook), starts the transcription from the room
// page, her espeak-ng speech shows on bob's page as partial captions that turn into her final
// caption, "Summarise"
// shows the summary on both pages and sends it to her Telegram chat, and the stored
// transcript lists what she said. Needs WEBCALL_TEST_WHISPER_MODEL (CI builds it with
// scripts/make-test-model.sh), espeak-ng and sox; without the model it is skipped (failed
// instead with WEBCALL_TEST_REQUIRE_ALL=1, as in CI).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import { PASSWORD, REGISTRATION_SECRET, startServer } from './server.mjs';
import { chromiumArgs, needs } from './harness.mjs';

const MODEL = process.env.WEBCALL_TEST_WHISPER_MODEL;
const BOT_TOKEN = '123456:test-bot-token';
const WEBHOOK_SECRET = 'webhook-secret-for-tests';
// Long enough (~6 s) for partial captions to show while she speaks.
const ALICE_SAYS = 'Good morning everyone, today in this meeting we will talk about the new schedule and the budget.';

const dir = mkdtempSync(join(tmpdir(), 'webcall-agent-'));
if (MODEL) console.log(`screenshots: ${dir}`);

/** espeak-ng speech, 48 kHz mono 16-bit, with a second of silence after it (the file loops). */
function speech(text, name) {
  const raw = join(dir, `${name}.espeak.wav`);
  const out = join(dir, `${name}.wav`);
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', raw, text]);
  execFileSync('sox', [raw, '-r', '48000', '-b', '16', '-c', '1', out, 'pad', '0.5', '1.5']);
  return out;
}

/** A silent WAV: a microphone that hears nothing. */
function silence(name) {
  const path = join(dir, `${name}.wav`);
  const rate = 48_000;
  const data = Buffer.alloc(rate * 2 * 2);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0); header.writeUInt32LE(36 + data.length, 4); header.write('WAVE', 8);
  header.write('fmt ', 12); header.writeUInt32LE(16, 16); header.writeUInt16LE(1, 20); header.writeUInt16LE(1, 22);
  header.writeUInt32LE(rate, 24); header.writeUInt32LE(rate * 2, 28); header.writeUInt16LE(2, 32); header.writeUInt16LE(16, 34);
  header.write('data', 36); header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
  return path;
}


/** The Bot API stand-in: every method succeeds; calls are recorded. */
function botApi() {
  const seen = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      let parsed = null;
      try { parsed = JSON.parse(body); } catch { parsed = Object.fromEntries(new URLSearchParams(body)); }
      seen.push({ path: req.url, body: parsed });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, result: true }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({ base: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() });
  }));
}

let server;
let bot;
const browsers = [];
const problems = [];

before(async () => {
  if (!MODEL) return;
  bot = await botApi();
  server = await startServer({
    env: {
      WHISPER_MODEL: MODEL, WHISPER_LANGUAGE: 'en', WHISPER_WORKERS: '1', WHISPER_THREADS: '2',
      TELEGRAM_BOT_TOKEN: BOT_TOKEN, TELEGRAM_BOT_USERNAME: 'webcall_test_bot',
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET, TELEGRAM_API_BASE: bot.base,
    },
  });
});

after(async () => {
  for (const b of browsers) await b.close();
  server?.stop();
  bot?.close();
});

async function open(name, wav) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: chromiumArgs(wav) });
  browsers.push(browser);
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url ?? '';
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text()) && url.includes('/api/')) return;
    problems.push(`${name}: ${msg.text()} (${url})`);
  });
  page.on('pageerror', (err) => problems.push(`${name}: uncaught: ${err.message}`));
  // Sign in through the form.
  await page.goto(`${server.base}/`);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form').getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Your rooms', level: 1 }).waitFor();
  return page;
}

async function go(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

test('agent: Telegram link in settings, transcription from the room page, a caption on the other page, summary', { timeout: 300_000, ...needs(!MODEL && 'WEBCALL_TEST_WHISPER_MODEL is not set (scripts/make-test-model.sh builds the model)') }, async () => {
  const tokens = {};
  for (const name of ['alice', 'bob']) {
    const s = await server.api('/api/v1/auth/register', { method: 'POST', body: { username: name, password: PASSWORD, registration_secret: REGISTRATION_SECRET } });
    tokens[name] = s.token;
  }
  const room = await server.api('/api/v1/rooms', { method: 'POST', token: tokens.alice, body: { name: 'Planning' } });
  await server.api(`/api/v1/rooms/${room.id}/members`, { method: 'POST', token: tokens.alice, body: { username: 'bob', role: 'member' } });

  const alice = await open('alice', speech(ALICE_SAYS, 'alice'));
  const bob = await open('bob', silence('bob'));

  // Telegram: the deep link, the bot's webhook with /start <token>, the status turns confirmed.
  await go(alice, '/settings');
  await alice.getByRole('button', { name: 'Link Telegram' }).click();
  const deepLink = await alice.getByRole('link', { name: 'Open Telegram' }).getAttribute('href');
  const linkToken = new URL(deepLink).searchParams.get('start');
  assert.ok(deepLink.startsWith('https://t.me/webcall_test_bot?start=') && linkToken, deepLink);
  await alice.getByText('Waiting for you to press Start in Telegram').waitFor();
  const hook = await fetch(`${server.base}/api/v1/telegram/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': WEBHOOK_SECRET },
    body: JSON.stringify({
      update_id: 1,
      message: { message_id: 7, date: 1_700_000_000, chat: { id: 4242, type: 'private' }, from: { id: 4242, is_bot: false, first_name: 'A' }, text: `/start ${linkToken}` },
    }),
  });
  assert.equal(hook.status, 200);
  await alice.getByText('Linked: summaries are sent to your Telegram chat.').waitFor({ timeout: 10_000 });
  await alice.getByRole('button', { name: 'Unlink Telegram' }).waitFor();

  for (const page of [alice, bob]) {
    await go(page, `/rooms/${room.id}`);
    await page.getByRole('heading', { name: 'Planning' }).waitFor();
    await page.getByRole('button', { name: 'Join call' }).click();
    await page.locator('.call-state[data-state="connected"]').waitFor({ timeout: 20_000 });
    await page.getByRole('tab', { name: 'AI agent' }).click();
  }
  // What bob's page shows, in order: each partial line and each final caption.
  await bob.evaluate(() => {
    const seen = [];
    /** @type {any} */ (window).captionLog = seen;
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('.caption-partials .caption.partial')) {
        const text = li.textContent;
        if (seen.at(-1)?.text !== text) seen.push({ kind: 'partial', revision: Number(li.getAttribute('data-revision')), stable: li.querySelector('.caption-stable')?.textContent ?? '', text });
      }
      const finals = document.querySelectorAll('.captions:not(.caption-partials) .caption');
      if (finals.length > seen.filter((e) => e.kind === 'final').length) {
        seen.push({ kind: 'final', text: finals[finals.length - 1].textContent, partialsShown: document.querySelectorAll('.caption-partials .caption').length });
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await alice.getByRole('button', { name: 'Start transcription' }).click();
  for (const page of [alice, bob]) await page.getByText('Transcribing — started by alice').waitFor({ timeout: 10_000 });

  // Alice's speech reaches bob's page as partial captions that grow, then her final caption
  // replaces them. Her WAV loops, so utterances repeat: the first one whose final came after
  // a partial is checked (on a busy machine partials are skipped by design, finals never).
  const caption = bob.locator('.captions .caption:not(.partial)[data-user="alice"]', { hasText: /morning|meeting/i }).first();
  await caption.waitFor({ timeout: 60_000 });
  console.log(`caption: ${await caption.textContent()}`);
  // A picture of words in progress, for the docs (best effort: partials are optional).
  await bob.locator('.caption-partials .caption.partial .caption-unstable:not(:empty)').first()
    .waitFor({ timeout: 20_000 })
    .then(() => bob.locator('section.agent').screenshot({ path: join(dir, 'captions-partial.png') }))
    .catch(() => {});
  const grown = await bob.waitForFunction(() => {
    const log = /** @type {any} */ (window).captionLog;
    let partials = [];
    for (const e of log) {
      if (e.kind === 'partial') partials.push(e);
      else if (partials.length >= 1) return { partials, final: e };
      else partials = [];
    }
    return null;
  }, null, { timeout: 120_000 }).then((h) => h.jsonValue());
  console.log(`partials before a final: ${JSON.stringify(grown.partials.map((e) => e.text))} -> ${grown.final.text}`);
  const { partials } = grown;
  for (let i = 1; i < partials.length; i += 1) {
    if (partials[i].revision > partials[i - 1].revision) {
      assert.ok(partials[i].stable.startsWith(partials[i - 1].stable), `stable words stay: ${JSON.stringify(partials)}`);
    }
  }
  assert.equal(grown.final.partialsShown, 0, 'the final replaced the partial line');
  await bob.locator('section.agent').screenshot({ path: join(dir, 'captions-final.png') });

  const toAlice = () => bot.seen.filter((r) => r.path.endsWith('/sendMessage') && String(r.body.chat_id) === '4242').length;
  const sentBefore = toAlice(); // the bot's "linked" answer
  await alice.getByRole('button', { name: 'Summarise' }).click();
  for (const page of [alice, bob]) {
    await page.locator('.summaries .summary', { hasText: 'Asked by alice' }).waitFor({ timeout: 60_000 });
  }
  const summary = await bob.locator('.summaries .summary').first().textContent();
  console.log(`summary: ${summary}`);
  assert.match(summary, /alice/);
  await bob.getByText('Not transcribing.').waitFor();
  await alice.locator('.summaries .summary .tag', { hasText: 'Sent to Telegram (1)' }).waitFor();
  assert.ok(toAlice() > sentBefore, `summary sent to alice's chat: ${JSON.stringify(bot.seen.map((r) => r.path))}`);

  await bob.getByRole('button', { name: 'Show the stored transcript' }).click();
  await bob.locator('.transcript li', { hasText: 'alice:' }).first().waitFor();
  await bob.screenshot({ path: join(dir, 'room-agent-desktop.png'), fullPage: true });
  await bob.setViewportSize({ width: 360, height: 740 });
  await bob.screenshot({ path: join(dir, 'room-agent-phone.png'), fullPage: true });

  assert.deepEqual(problems, []);
});
