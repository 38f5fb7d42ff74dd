// The single-page app, end to end: two users register through the form, talk in a call
// (each one's tone heard by the other through the SFU: harness.mjs hearing), moderate, chat
// (also across a dropped socket), exchange an encrypted DM, edit settings, and hit the bad
// paths. Every page fails the test on a console error, an uncaught exception or a CSP
// violation; axe-core scans each screen; screenshots of each screen (desktop and 360 px) go
// to a folder printed at the start.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { PASSWORD, REGISTRATION_SECRET, startServer } from './server.mjs';
import {
  axe, everyoneHearsEveryone, launchChromium, sample, skipOrFail, toneWav, tonesOn, waitFor,
} from './harness.mjs';

const SHOTS = mkdtempSync(join(tmpdir(), 'webcall-screens-'));
console.log(`screenshots: ${SHOTS}`);

let server;
/** @type {import('playwright-core').Browser} Alice's and the other pages' (tone 0). */
let browser;
/** @type {import('playwright-core').Browser} Bob's: a fake microphone of his own (tone 1). */
let bobBrowser;
/** Problems seen on any page: console errors, uncaught exceptions, CSP violations. */
const problems = [];
/** @type {import('playwright-core').Page[]} */
const pages = [];

before(async () => {
  server = await startServer();
  // Fake microphones from WAVs, loopback ICE (harness.mjs says why each flag).
  browser = await launchChromium(toneWav(0));
  bobBrowser = await launchChromium(toneWav(1));
});

after(async () => {
  await browser?.close();
  await bobBrowser?.close();
  server?.stop();
});

/**
 * A fresh browser context (its own storage: one user) with a page that records problems.
 * The browser reports expected API refusals (401 wrong password, 404 deleted room…) as
 * "Failed to load resource" console errors; those are the API answering, not the app
 * failing, so they are allowed for /api/ URLs with a 4xx status only.
 */
async function newPage(name, { lang = 'en-US', width = 1280, height = 800, from = browser } = {}) {
  const context = await from.newContext({ locale: lang, viewport: { width, height } });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const url = msg.location()?.url ?? '';
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text) && url.includes('/api/')) return;
    problems.push(`${name}: console error: ${text} (${url})`);
  });
  page.on('pageerror', (err) => problems.push(`${name}: uncaught: ${err.message}`));
  page.on('dialog', (d) => d.accept());
  pages.push(page);
  return page;
}


/** Screenshots at the page's size and at 360 px phone width. */
async function shots(page, screen) {
  const size = page.viewportSize();
  await page.screenshot({ path: join(SHOTS, `${screen}-desktop.png`), fullPage: true });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.waitForTimeout(100);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${screen} scrolls sideways at 360 px (${overflow} px)`);
  await page.screenshot({ path: join(SHOTS, `${screen}-phone.png`), fullPage: true });
  await page.setViewportSize(size);
}

async function register(page, username) {
  await page.goto(`${server.base}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Registration secret').fill(REGISTRATION_SECRET);
  await page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Your rooms' }).waitFor();
}

/** Goes to an in-app path without reloading (the server may not serve index.html there). */
async function go(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

/** Inbound audio per remote stream on a page (through window.webcall, the current Call). */
async function inbound(page) {
  return page.evaluate(async () => {
    const call = /** @type {any} */ (window).webcall;
    return { me: call?.participantId, inbound: call ? await call.inboundAudio() : [] };
  });
}

async function waitUntil(what, fn, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last && last.ok) return last;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The energy of `pid`'s audio at `page` (0 when not received). */
async function energyFrom(page, pid) {
  const s = await inbound(page);
  return s.inbound.find((x) => x.streamId === `p${pid}`)?.energy ?? 0;
}

const ctx = {};

test('register, create a room, add a member, call with audio both ways, speaking, mute, unmute request', { timeout: 90_000 }, async () => {
  const alice = await newPage('alice');
  await register(alice, 'alice');
  await axe(alice, 'rooms (empty)');
  const bob = await newPage('bob', { from: bobBrowser });
  await register(bob, 'bob');
  ctx.alice = alice;
  ctx.bob = bob;

  await alice.getByLabel('Room name').fill('Standup');
  await alice.getByRole('button', { name: 'Create room' }).click();
  await alice.getByRole('heading', { name: 'Standup' }).waitFor();
  const roomId = Number(new URL(alice.url()).pathname.split('/').pop());
  assert.ok(roomId > 0);
  ctx.roomId = roomId;

  await alice.getByRole('tab', { name: 'Members' }).click();
  await alice.getByRole('tabpanel').getByLabel('Username').fill('bob');
  await alice.getByRole('button', { name: 'Add', exact: true }).click();
  await alice.locator('.member[data-user="bob"]').waitFor();

  // Bob finds the room in his list (in-app navigation) and opens it.
  await go(bob, '/');
  await bob.getByRole('link', { name: 'Standup' }).click();
  await bob.getByRole('heading', { name: 'Standup' }).waitFor();

  await alice.getByRole('button', { name: 'Join call' }).click();
  await bob.getByRole('button', { name: 'Join call' }).click();
  await alice.locator('.call-state[data-state="connected"]').waitFor({ timeout: 20_000 });
  await bob.locator('.call-state[data-state="connected"]').waitFor({ timeout: 20_000 });

  // Both hear each other: each one's tone on the other's page.
  const [a, b] = await waitFor([alice, bob], 'audio both ways', everyoneHearsEveryone);
  const pids = { alice: a.me, bob: b.me };
  ctx.pids = pids;

  // Bob's speaking ring lights on Alice's page.
  await alice.locator('.tile[data-user="bob"].speaking').waitFor({ timeout: 15_000 });
  await alice.locator('.tile[data-user="alice"] .role-owner').waitFor();
  await axe(alice, 'room (in call)');
  await shots(alice, 'room-call');

  // Alice (owner) mutes Bob: his audio stops reaching her; his page shows the lock.
  await alice.locator('.tile[data-user="bob"] summary').click();
  await alice.locator('.tile[data-user="bob"] .menu').getByRole('button', { name: 'Mute' }).click();
  await alice.locator('.tile[data-user="bob"] .muted-icon').waitFor();
  await bob.getByRole('button', { name: 'Muted by a moderator' }).waitFor();
  await new Promise((r) => setTimeout(r, 1500)); // packets in flight drain
  const e1 = await energyFrom(alice, pids.bob);
  await new Promise((r) => setTimeout(r, 2000));
  const e2 = await energyFrom(alice, pids.bob);
  assert.ok(e2 - e1 < 1e-3, `bob's energy at alice keeps growing while muted: ${e1} -> ${e2}`);
  const [muted] = await sample([alice]);
  assert.deepEqual(tonesOn(muted, `p${pids.bob}`), [], 'no tone on bob\'s stream at alice while he is muted');
  await alice.locator('.tile[data-user="bob"].speaking').waitFor({ state: 'detached', timeout: 5000 });

  // Bob can't unmute himself; Alice asks him to, and he does.
  await alice.locator('.tile[data-user="bob"] summary').click();
  await alice.locator('.tile[data-user="bob"] .menu').getByRole('button', { name: 'Ask to unmute' }).click();
  await bob.getByText('alice asks you to unmute.').waitFor();
  // The call's activity line (the screen-reader announcer says it too, 50 ms later).
  await alice.getByRole('region', { name: 'Call' }).getByText('alice asked bob to unmute.').waitFor();
  await bob.locator('.unmute-prompt').getByRole('button', { name: 'Unmute' }).click();
  await alice.locator('.tile[data-user="bob"] .muted-icon').waitFor({ state: 'detached' });
  await waitFor([alice, bob], 'bob audible again', everyoneHearsEveryone, 10_000);
});

test('the grid at 50 participants: speaking changes reach the DOM at most ~10 times a second', { timeout: 30_000 }, async () => {
  const { alice } = ctx;
  // 48 more participants and a storm of speaking events, fed to the page's Call as if the
  // server had sent them (window.webcall.hooks.onMessage is where the socket delivers them).
  const result = await alice.evaluate(async () => {
    const call = /** @type {any} */ (window).webcall;
    const deliver = (msg) => call.hooks.onMessage(msg);
    for (let i = 0; i < 48; i++) {
      deliver({ type: 'participant_joined', participant: { participant_id: 9_000_000 + i, user_id: 9000 + i, username: `guest${String(i).padStart(2, '0')}`, role: i % 10 === 0 ? 'moderator' : 'member', muted: i % 3 === 0, mute_locked: false } });
    }
    const grid = /** @type {HTMLElement} */ (document.querySelector('.grid'));
    let batches = 0;
    const observer = new MutationObserver(() => { batches += 1; });
    observer.observe(grid, { attributes: true, subtree: true, attributeFilter: ['class'] });
    const started = performance.now();
    let events = 0;
    while (performance.now() - started < 1000) {
      for (let i = 0; i < 48; i++) {
        deliver({ type: 'speaking', participant_id: 9_000_000 + i, speaking: Math.random() < 0.5 });
        events += 1;
      }
      deliver({ type: 'active_speaker', participant_id: 9_000_000 + Math.floor(Math.random() * 48) });
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 250));
    observer.disconnect();
    return { tiles: grid.querySelectorAll('.tile').length, batches, events, speaking: grid.querySelectorAll('.tile.speaking').length };
  });
  console.log(JSON.stringify(result));
  assert.equal(result.tiles, 50);
  assert.ok(result.events > 1000, `a storm of events: ${result.events}`);
  assert.ok(result.batches <= 14, `speaking updates batched: ${result.batches} DOM batches for ${result.events} events`);
  await alice.getByRole('heading', { name: 'In the call (50)' }).waitFor();
  await axe(alice, 'room (50 participants)');
  await shots(alice, 'room-50');
  await alice.evaluate(() => {
    const call = /** @type {any} */ (window).webcall;
    for (let i = 0; i < 48; i++) call.hooks.onMessage({ type: 'participant_left', participant_id: 9_000_000 + i, user_id: 9000 + i, reason: 'left' });
  });
  await alice.getByRole('heading', { name: 'In the call (2)' }).waitFor();
});

test('chat both ways, links only for http(s), own message once, and catch-up after the socket drops', { timeout: 60_000 }, async () => {
  const { alice, bob } = ctx;
  assert.ok(alice && bob, 'the call test ran');
  // Alice looks at another panel: the Chat tab counts what arrives meanwhile.
  await bob.getByRole('tab', { name: 'Chat' }).click();
  await bob.getByRole('textbox', { name: 'Message' }).fill('Anyone there?');
  await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
  await alice.getByRole('tab', { name: 'Chat (1)' }).waitFor();
  await alice.getByRole('tab', { name: 'Chat (1)' }).click();
  await alice.getByRole('tab', { name: 'Chat', exact: true }).waitFor();
  await alice.locator('.chat-list .msg', { hasText: 'Anyone there?' }).waitFor();

  await alice.getByRole('textbox', { name: 'Message' }).fill('Agenda: https://example.org/agenda and javascript:alert(1)');
  await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
  const fromAlice = bob.locator('.chat-list .msg', { hasText: 'Agenda:' });
  await fromAlice.waitFor();
  assert.equal(await fromAlice.locator('a').count(), 1, 'one link');
  assert.equal(await fromAlice.locator('a').getAttribute('href'), 'https://example.org/agenda');

  await bob.getByRole('textbox', { name: 'Message' }).fill('Got it <b>not bold</b>');
  await bob.getByRole('button', { name: 'Send' }).click();
  await alice.locator('.chat-list .msg', { hasText: 'Got it <b>not bold</b>' }).waitFor();
  assert.equal(await alice.locator('.chat-list b').count(), 0, 'text is never HTML');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await alice.locator('.chat-list .msg', { hasText: 'Agenda:' }).count(), 1, 'own message shown once');
  assert.equal(await bob.locator('.chat-list .msg', { hasText: 'Got it' }).count(), 1, 'own message shown once');

  // The 4000-character limit shows before sending.
  await bob.getByRole('textbox', { name: 'Message' }).fill('x'.repeat(4005));
  await bob.getByText('5 characters over the limit.').waitFor();
  await bob.getByRole('textbox', { name: 'Message' }).fill('');

  // Alice's room socket drops: the page says so, reconnects by itself, and shows what Bob
  // wrote meanwhile, once.
  await alice.evaluate(() => {
    const w = /** @type {any} */ (window);
    const state = /** @type {HTMLElement} */ (document.querySelector('.call-state'));
    w.seenStates = [];
    new MutationObserver(() => w.seenStates.push(state.dataset.state)).observe(state, { attributes: true });
    w.webcall.socket.ws.close();
  });
  await bob.getByRole('textbox', { name: 'Message' }).fill('Sent while you were away');
  await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
  await waitUntil('reconnected', async () => {
    const seen = await alice.evaluate(() => /** @type {any} */ (window).seenStates);
    return { ok: seen.includes('reconnecting') && seen.at(-1) === 'connected', seen };
  }, 20_000);
  await alice.locator('.chat-list .msg', { hasText: 'Sent while you were away' }).waitFor({ timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await alice.locator('.chat-list .msg', { hasText: 'Sent while you were away' }).count(), 1);
  await waitFor([alice, bob], 'audio after the reconnect', everyoneHearsEveryone, 20_000);
  await axe(alice, 'room (chat)');
  await shots(bob, 'room-chat');
});

test('an encrypted DM is read by bob; the server holds ciphertext only', { timeout: 30_000 }, async () => {
  const { alice, bob } = ctx;
  await go(alice, '/dm/bob');
  await alice.getByText('End-to-end encrypted').waitFor();
  await alice.getByRole('textbox', { name: 'Message' }).fill('The launch code is 1234');
  await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
  await alice.locator('.dm-list .msg', { hasText: 'The launch code is 1234' }).waitFor();
  // Bob sees the unread badge, opens the conversation, reads the plain text.
  await bob.locator('.topbar .badge', { hasText: '1' }).waitFor();
  await go(bob, '/dm');
  await bob.getByRole('link', { name: /alice/ }).click();
  await bob.locator('.dm-list .msg', { hasText: 'The launch code is 1234' }).waitFor();
  await alice.locator('.dm-list .msg.mine .receipt', { hasText: 'read' }).waitFor();
  await axe(bob, 'dm');
  await shots(bob, 'dm');
  // What the server stored: ciphertext, no text.
  const token = await alice.evaluate(() => JSON.parse(sessionStorage.getItem('webcall.session') ?? '{}').token);
  const stored = await server.api('/api/v1/dm/bob', { token });
  const row = stored.find((m) => m.ciphertext);
  assert.ok(row, JSON.stringify(stored));
  assert.equal(row.text, undefined);
  assert.ok(!Buffer.from(row.ciphertext, 'base64').toString('latin1').includes('launch'));
  await go(alice, `/rooms/${ctx.roomId}`);
  await go(bob, `/rooms/${ctx.roomId}`);
});

test('a reload or a copied link opens the same screen (the server answers app paths with index.html)', { timeout: 30_000 }, async (t) => {
  const { alice, bob } = ctx;
  const probe = await fetch(`${server.base}/rooms/${ctx.roomId}`);
  const html = await probe.text();
  if (!probe.ok || !html.includes('id="view"')) {
    skipOrFail(t, `this server answers /rooms/${ctx.roomId} with ${probe.status}: no SPA fallback yet`);
    return;
  }
  await alice.reload();
  await alice.getByRole('heading', { name: 'Standup' }).waitFor();
  await alice.getByRole('button', { name: 'Join call' }).waitFor();
  // A copied link in a new tab (the session is per tab without "remember me"): sign in,
  // then the linked screen.
  const page = await bob.context().newPage();
  await page.goto(`${server.base}/dm/alice`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(new URL(page.url()).searchParams.get('next'), '/dm/alice');
  await page.getByLabel('Username').fill('bob');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Keep me signed in').check();
  await page.locator('form').getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Messages with alice' }).waitFor();
  await page.locator('.dm-list .msg', { hasText: 'The launch code is 1234' }).waitFor();
  await page.close();
});

test('settings: prompt validation, save and reset; language switch; key rotation keeps old DMs readable', { timeout: 30_000 }, async () => {
  const { alice } = ctx;
  await go(alice, '/settings');
  const prompt = alice.getByLabel('Summary prompt');
  await alice.getByText('This is the server’s default prompt.').waitFor();
  const original = await prompt.inputValue();
  await prompt.fill('short');
  await alice.getByRole('button', { name: 'Save' }).click();
  await alice.getByText('The prompt needs at least 10 characters.').waitFor();
  await prompt.fill('Summarise in three bullet points, in English.');
  await alice.getByRole('button', { name: 'Save' }).click();
  await alice.getByText('This is your own prompt.').waitFor();
  await axe(alice, 'settings');
  await shots(alice, 'settings');
  await alice.getByRole('button', { name: 'Reset to default' }).click();
  await alice.getByText('This is the server’s default prompt.').waitFor();
  assert.equal(await prompt.inputValue(), original);
  await alice.getByLabel('Interface language').selectOption('ru');
  await alice.getByRole('heading', { name: 'Настройки' }).waitFor();
  await axe(alice, 'settings (ru)');
  await alice.getByLabel('Язык интерфейса').selectOption('en');
  await alice.getByRole('heading', { name: 'Settings' }).waitFor();

  // Key rotation: old messages stay readable, new ones use the new key, bob is warned.
  const before = await alice.locator('code.fingerprint').textContent();
  await alice.getByRole('button', { name: 'Generate a new key' }).click();
  await alice.getByText('New key published.').waitFor();
  assert.notEqual(await alice.locator('code.fingerprint').textContent(), before);
  await go(alice, '/dm/bob');
  await alice.locator('.dm-list .msg', { hasText: 'The launch code is 1234' }).waitFor();
  await alice.getByRole('textbox', { name: 'Message' }).fill('Sent with the new key');
  await alice.getByRole('textbox', { name: 'Message' }).press('Enter');
  await alice.locator('.dm-list .msg', { hasText: 'Sent with the new key' }).waitFor();
  const { bob } = ctx;
  await go(bob, '/dm/alice');
  // Bob's browser remembers alice's first key: the new one is put to him with both
  // fingerprints, and the message that came with it is marked until he trusts it.
  await bob.locator('.key-prompt', { hasText: 'The key of alice changed' }).waitFor();
  await bob.locator('.dm-list .msg', { hasText: 'Sent with the new key' }).locator('.new-key').waitFor();
  await bob.locator('.dm-list .msg', { hasText: 'The launch code is 1234' }).locator('.lock').waitFor();
  assert.equal(await bob.locator('.undecryptable').count(), 0);
  await axe(bob, 'dm (key changed)');
  await bob.getByRole('button', { name: 'Trust the new key', exact: true }).click();
  await bob.locator('.dm-list .msg', { hasText: 'Sent with the new key' }).locator('.lock').waitFor();
  await bob.getByText('End-to-end encrypted:').waitFor();
  assert.equal(await bob.locator('.new-key').count(), 0);
  assert.equal(await bob.locator('.key-prompt').isVisible(), false);
});

test('bad paths: wrong password, wrong secret, taken name, deleted room, removed member', { timeout: 60_000 }, async () => {
  const { alice, bob } = ctx;
  const stranger = await newPage('stranger', { width: 360, height: 740 });
  await stranger.goto(`${server.base}/`);
  await stranger.getByLabel('Username').fill('alice');
  await stranger.getByLabel('Password').fill('not the password');
  await stranger.locator('form').getByRole('button', { name: 'Sign in' }).click();
  await stranger.getByText('Wrong username or password.').waitFor();
  assert.equal(await stranger.getByLabel('Password').getAttribute('aria-invalid'), 'true');
  await axe(stranger, 'sign in (error)');
  await shots(stranger, 'sign-in-error');

  await stranger.getByRole('button', { name: 'Create account' }).click();
  await stranger.getByLabel('Username').fill('carol');
  await stranger.getByLabel('Password').fill(PASSWORD);
  await stranger.getByLabel('Registration secret').fill('wrong secret');
  await stranger.locator('form').getByRole('button', { name: 'Create account' }).click();
  await stranger.getByText('The registration secret is wrong.').waitFor();
  assert.equal(await stranger.getByLabel('Registration secret').getAttribute('aria-invalid'), 'true');
  await stranger.getByLabel('Username').fill('Alice');
  await stranger.getByLabel('Registration secret').fill(REGISTRATION_SECRET);
  await stranger.locator('form').getByRole('button', { name: 'Create account' }).click();
  await stranger.getByText('This username is taken.').waitFor();
  await axe(stranger, 'register (error)');
  await shots(stranger, 'register-error');

  // A token the server no longer accepts: back to sign-in, with a word why.
  await stranger.evaluate(() => sessionStorage.setItem('webcall.session', JSON.stringify({
    token: 'not.a.valid-token', user: { id: 99, username: 'ghost', created_at: '' }, expiresAt: Date.now() + 3600_000,
  })));
  await stranger.goto(`${server.base}/`);
  await stranger.getByText('Your session has expired. Please sign in again.').waitFor();
  await stranger.getByRole('heading', { name: 'Sign in' }).waitFor();

  // A room deleted while Bob looks at it.
  await go(alice, '/');
  await alice.getByLabel('Room name').fill('Temporary');
  await alice.getByRole('button', { name: 'Create room' }).click();
  await alice.getByRole('heading', { name: 'Temporary' }).waitFor();
  const tempId = Number(new URL(alice.url()).pathname.split('/').pop());
  await alice.getByRole('tab', { name: 'Members' }).click();
  await alice.getByRole('tabpanel').getByLabel('Username').fill('bob');
  await alice.getByRole('button', { name: 'Add', exact: true }).click();
  // Typed while bob's add is still in flight: the answer to it must not wipe the next name.
  await alice.getByRole('tabpanel').getByLabel('Username').fill('nobody-here');
  await alice.getByRole('button', { name: 'Add', exact: true }).click();
  await alice.getByText('There is no user with this name.').waitFor();
  await alice.getByRole('button', { name: 'Remove bob' }).waitFor();
  await go(bob, `/rooms/${tempId}`);
  await bob.getByRole('heading', { name: 'Temporary' }).waitFor();
  await alice.getByRole('button', { name: 'Delete room' }).click();
  await alice.getByRole('heading', { name: 'Your rooms' }).waitFor();
  await alice.getByRole('link', { name: 'Standup' }).waitFor();
  await axe(alice, 'rooms');
  await shots(alice, 'rooms');
  await bob.getByText('This room does not exist any more, or you are no longer a member.').waitFor({ timeout: 10_000 });
  await shots(bob, 'room-deleted');

  // Bob, in the call of the first room, is removed by Alice.
  await go(bob, `/rooms/${ctx.roomId}`);
  await bob.getByRole('button', { name: 'Join call' }).click();
  await go(alice, `/rooms/${ctx.roomId}`);
  await alice.getByRole('tab', { name: 'Members' }).click();
  await bob.locator('.call-state[data-state="connected"]').waitFor({ timeout: 20_000 });
  // The owner makes bob a moderator; bob's page follows.
  await alice.getByLabel('Role of bob').selectOption('moderator');
  await bob.locator('.room-head .role', { hasText: 'moderator' }).waitFor();
  await alice.getByRole('button', { name: 'Remove bob' }).click();
  await bob.getByText('You were removed from this room.').waitFor({ timeout: 10_000 });
  await axe(bob, 'removed');
});

/** Presses Tab until the focused element matches `selector` (and `text`, if given). */
async function tabTo(page, selector, text, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const hit = await page.evaluate(([sel, txt]) => {
      const el = document.activeElement;
      return Boolean(el && el.matches(sel) && (!txt || (el.textContent ?? '').includes(txt)));
    }, [selector, text]);
    if (hit) {
      const outline = await page.evaluate(() => getComputedStyle(/** @type {Element} */ (document.activeElement)).outlineStyle);
      assert.notEqual(outline, 'none', `visible focus on ${selector}`);
      return;
    }
  }
  assert.fail(`Tab never reached ${selector} ${text ?? ''}`);
}

test('keyboard only: sign in, open a room, switch panels, send a chat message; no microphone; sign out', { timeout: 30_000 }, async () => {
  const { alice } = ctx;
  const dave = await server.api('/api/v1/auth/register', { method: 'POST', body: { username: 'dave', password: PASSWORD, registration_secret: REGISTRATION_SECRET } });
  assert.ok(dave.token);
  const aliceToken = await alice.evaluate(() => JSON.parse(sessionStorage.getItem('webcall.session') ?? '{}').token);
  await server.api(`/api/v1/rooms/${ctx.roomId}/members`, { method: 'POST', token: aliceToken, body: { username: 'dave', role: 'member' } });
  const page = await newPage('keyboard');
  await page.goto(`${server.base}/`);
  await tabTo(page, 'input[name="username"]');
  await page.keyboard.type('dave');
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Your rooms', level: 1 }).waitFor();
  await tabTo(page, 'a.room-name', 'Standup');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Standup' }).waitFor();
  await tabTo(page, '[role="tab"]', 'Chat');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getByRole('tab', { name: 'Members' }).getAttribute('aria-selected'), 'true');
  await page.getByRole('tabpanel').locator('.member[data-user="alice"]').waitFor();
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.getByRole('tab', { name: 'Chat' }).getAttribute('aria-selected'), 'true');
  await tabTo(page, 'textarea');
  await page.keyboard.type('Typed without a mouse');
  await page.keyboard.press('Enter');
  await page.locator('.chat-list .msg', { hasText: 'Typed without a mouse' }).waitFor();
  // A refused microphone is said plainly (and nothing is left trying to connect).
  await page.evaluate(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await tabTo(page, 'button', 'Join call');
  await page.keyboard.press('Enter');
  await page.getByText('No microphone can be used').waitFor();
  assert.equal(await page.locator('.call-state').getAttribute('data-state'), 'failed');
  await page.getByRole('button', { name: 'Join call' }).waitFor();
  // Sign out: back to sign-in, nothing left in storage.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('webcall.session') ?? localStorage.getItem('webcall.session')), null);
  await page.context().close();
});

test('no page logged a console error, an uncaught exception or a CSP violation', () => {
  assert.deepEqual(problems, []);
});
