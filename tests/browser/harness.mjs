// What the call tests share: Chromium with a fake microphone, users and a room on the real
// server, the call page, and sampling each page's inbound audio through getStats().

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { PASSWORD, REGISTRATION_SECRET } from './server.mjs';
import { writeToneWav } from './wav.mjs';

const wavDir = mkdtempSync(join(tmpdir(), 'webcall-wav-'));

/** A fake-microphone WAV per page, each with its own tones. */
export function toneWav(index) {
  const path = join(wavDir, `tone-${index}.wav`);
  writeToneWav(path, 10, [300 + 70 * index, 420 + 70 * index, 540 + 70 * index]);
  return path;
}

// Chromium flags, found on this machine:
// - the base set keeps Chromium from reaching out to the network (refused here anyway);
// - --use-fake-ui-for-media-stream grants the microphone without a prompt,
//   --use-fake-device-for-media-stream + --use-file-for-fake-audio-capture feed it a WAV;
// - --allow-loopback-in-peer-connection: without it Chromium gathers no 127.0.0.1 candidate
//   and ICE to a server on loopback never connects.
export function chromiumArgs(wav) {
  return [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
  ];
}

/** A Chromium process of its own (its own network stack, as two people's machines have). */
export function launchChromium(wav) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs(wav),
  });
}

/** The user each token belongs to, for signing the app in. */
const usersByToken = new Map();

export async function registerUser(server, name) {
  const res = await server.api('/api/v1/auth/register', {
    method: 'POST',
    body: { username: name, password: PASSWORD, registration_secret: REGISTRATION_SECRET },
  });
  usersByToken.set(res.token, res.user);
  return res.token;
}

/** The app's stored session for `token` (static/js/session.js), as sign-in leaves it. */
export function sessionFor(token) {
  return { token, user: usersByToken.get(token), expiresAt: Date.now() + 3_600_000 };
}

/** Registers `names`, the first creates a room and adds the others. */
export async function roomWith(server, names, title = 'Call') {
  const tokens = await Promise.all(names.map((n) => registerUser(server, n)));
  const room = await server.api('/api/v1/rooms', { method: 'POST', token: tokens[0], body: { name: title } });
  for (const name of names.slice(1)) {
    await server.api(`/api/v1/rooms/${room.id}/members`, { method: 'POST', token: tokens[0], body: { username: name, role: 'member' } });
  }
  return { room, tokens };
}

/**
 * Signs the app in as `token`'s user in a new context of `browser`, opens the room page and
 * joins its call, as a person clicking "Join call" does.
 * @param {{beforeGoto?: (page: import('playwright-core').Page) => Promise<void>}} [opts]
 */
export async function openCall(browser, base, roomId, token, opts = {}) {
  const context = await browser.newContext();
  await context.addInitScript((session) => {
    if (!sessionStorage.getItem('webcall.session')) sessionStorage.setItem('webcall.session', JSON.stringify(session));
  }, sessionFor(token));
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('page error:', err));
  await opts.beforeGoto?.(page);
  await page.goto(`${base}/rooms/${roomId}`);
  await page.getByRole('button', { name: 'Join call' }).click();
  await page.waitForFunction(() => Boolean(/** @type {any} */ (window).webcall?.participantId));
  return page;
}

/** Each page's participant id, call state and inbound audio (see static/js/call.js). */
export function sample(pages) {
  return Promise.all(pages.map((p) => p.evaluate(async () => {
    const call = /** @type {any} */ (window).webcall;
    return {
      me: call?.participantId,
      state: call?.state,
      rejoins: call?.rejoins ?? 0,
      iceRestarts: call?.iceRestarts ?? 0,
      inbound: call ? await call.inboundAudio() : [],
    };
  })));
}

/** The streams a page hears with energy (not its own). */
export function heardBy({ me, inbound }) {
  return new Set(
    inbound.filter((s) => s.energy > 0 && s.packets > 50 && s.streamId !== `p${me}`).map((s) => s.streamId),
  );
}

/** Packets per stream a page has received. */
export function packetsByStream({ inbound }) {
  const out = new Map();
  for (const s of inbound) out.set(s.streamId, Math.max(out.get(s.streamId) ?? 0, s.packets));
  return out;
}

/** Waits until `ok(samples)` holds, failing with the last samples after `ms`. */
export async function waitFor(pages, what, ok, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = await sample(pages);
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(last)}`);
    await sleep(500);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Everyone hears everyone else (and only them): `n - 1` streams with energy per page. */
export function everyoneHearsEveryone(samples) {
  return samples.every((s) => s.me && heardBy(s).size >= samples.length - 1);
}

/**
 * Holds the call for `seconds`, sampling every `every` ms: every page's packets from every
 * other page must keep growing, and the server must never see a peer disconnected.
 * Returns the number of samples taken.
 */
export async function holdCall(server, pages, seconds, label, every = 3000) {
  const baseline = await server.metrics();
  let prev = await sample(pages);
  const streamsOf = (samples) => samples.map((s) => samples.filter((o) => o.me !== s.me).map((o) => `p${o.me}`));
  const expected = streamsOf(prev);
  const start = Date.now();
  let samples = 0;
  while (Date.now() - start < seconds * 1000) {
    await sleep(every);
    const cur = await sample(pages);
    const m = await server.metrics();
    const at = ((Date.now() - start) / 1000).toFixed(0);
    assert.equal(m.get('sfu_peers_disconnected') ?? 0, 0, `${label} +${at}s: the server saw a peer disconnected`);
    cur.forEach((page, i) => {
      assert.equal(page.state, 'connected', `${label} +${at}s: page ${i} is ${page.state}`);
      const before = packetsByStream(prev[i]);
      const now = packetsByStream(page);
      for (const stream of expected[i]) {
        const grew = (now.get(stream) ?? 0) - (before.get(stream) ?? 0);
        // 50 packets/s of Opus; a third of that per period leaves room for a loaded CPU.
        assert.ok(grew >= (every / 1000) * 15, `${label} +${at}s: page ${i} got ${grew} packets from ${stream} in ${every} ms`);
      }
    });
    prev = cur;
    samples += 1;
  }
  const end = await server.metrics();
  const grew = (name) => (end.get(name) ?? 0) - (baseline.get(name) ?? 0);
  assert.equal(grew('sfu_peer_disconnects_total'), 0, `${label}: a peer was disconnected meanwhile`);
  assert.equal(grew('sfu_peers_closed_total{reason="failed"}'), 0, `${label}: a peer failed meanwhile`);
  return samples;
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Scans the page with axe-core; fails on serious or critical violations.
 * @param {import('playwright-core').Page} page
 * @param {string} screen
 */
export async function axe(page, screen) {
  // evaluate() runs through the DevTools protocol, outside the page's CSP.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // @ts-ignore injected above
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `axe on ${screen}: ${JSON.stringify(bad, null, 1)}`);
}
