// Three headless Chromium pages join one room through static/call.html and hear each other
// through the SFU: each page's getStats() shows inbound audio with energy from the two others.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import { PASSWORD, REGISTRATION_SECRET, startServer } from './server.mjs';
import { writeToneWav } from './wav.mjs';

const wav = join(mkdtempSync(join(tmpdir(), 'webcall-wav-')), 'tone.wav');
writeToneWav(wav);

// Chromium flags, found on this machine:
// - the base set keeps Chromium from reaching out to the network (refused here anyway);
// - --use-fake-ui-for-media-stream grants the microphone without a prompt,
//   --use-fake-device-for-media-stream + --use-file-for-fake-audio-capture feed it a WAV;
// - --allow-loopback-in-peer-connection: without it Chromium gathers no 127.0.0.1 candidate
//   and ICE to a server on loopback never connects.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wav}`,
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** Reads each page's participant id and inbound audio (see static/js/call.js). */
async function sample(pages) {
  return Promise.all(pages.map((p) => p.evaluate(async () => {
    const call = /** @type {any} */ (window).webcall;
    return { me: call?.participantId, inbound: call ? await call.inboundAudio() : [] };
  })));
}

/** Waits until `ok(samples)` holds, failing with the last samples after `ms`. */
async function waitFor(pages, what, ok, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = await sample(pages);
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function openCall(roomId, token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('page error:', err));
  await page.goto(`${server.base}/call.html#room=${roomId}&token=${token}`);
  return page;
}

async function user(name) {
  const res = await server.api('/api/v1/auth/register', {
    method: 'POST',
    body: { username: name, password: PASSWORD, registration_secret: REGISTRATION_SECRET },
  });
  return res.token;
}

test('three browsers hear each other through the SFU, and a late joiner takes a leaver\'s place', { timeout: 120_000 }, async () => {
  const names = ['alice', 'bob', 'carol', 'dave'];
  const tokens = await Promise.all(names.map(user));
  const room = await server.api('/api/v1/rooms', { method: 'POST', token: tokens[0], body: { name: 'Browser test' } });
  for (const name of names.slice(1)) {
    await server.api(`/api/v1/rooms/${room.id}/members`, { method: 'POST', token: tokens[0], body: { username: name, role: 'member' } });
  }
  const pages = [];
  for (const token of tokens.slice(0, 3)) pages.push(await openCall(room.id, token));

  // Each page must receive audio with energy from the two others (stream ids p<participant>).
  const heardBy = ({ me, inbound }) => new Set(
    inbound.filter((s) => s.energy > 0 && s.packets > 50 && s.streamId !== `p${me}`).map((s) => s.streamId),
  );
  const all = await waitFor(pages, 'not everyone heard everyone', (samples) => samples.every((s) => heardBy(s).size >= 2));
  console.log(JSON.stringify(all));
  for (const { me, inbound } of all) {
    assert.ok(me, 'joined with a participant id');
    assert.ok(!inbound.some((s) => s.streamId === `p${me}` && s.packets > 0), 'nobody hears themselves');
  }

  // Alice leaves; Dave joins. Bob's and Carol's pages reuse Alice's m-line for Dave (same
  // SSRC, new msid): they must attribute the audio to Dave and its energy must keep growing.
  await pages[0].click('#leave');
  await pages[0].context().close();
  pages[0] = await openCall(room.id, tokens[3]);
  const [dave] = await waitFor([pages[0]], 'dave did not join', ([s]) => Boolean(s.me) && heardBy(s).size >= 2);
  const daveStream = `p${dave.me}`;
  const energyFromDave = (samples) => samples.slice(1).map(({ inbound }) => inbound.find((s) => s.streamId === daveStream)?.energy ?? 0);
  const first = await waitFor(pages, 'bob and carol did not get dave', (samples) => energyFromDave(samples).every((e) => e > 0));
  await new Promise((r) => setTimeout(r, 2000));
  const second = await sample(pages);
  const before = energyFromDave(first);
  const after = energyFromDave(second);
  assert.ok(after.every((e, i) => e > before[i]), `dave's audio keeps arriving: ${before} -> ${after}`);
});
