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

async function user(name) {
  const res = await server.api('/api/v1/auth/register', {
    method: 'POST',
    body: { username: name, password: PASSWORD, registration_secret: REGISTRATION_SECRET },
  });
  return res.token;
}

test('three browsers hear each other through the SFU', { timeout: 90_000 }, async () => {
  const names = ['alice', 'bob', 'carol'];
  const tokens = await Promise.all(names.map(user));
  const room = await server.api('/api/v1/rooms', { method: 'POST', token: tokens[0], body: { name: 'Browser test' } });
  for (const name of names.slice(1)) {
    await server.api(`/api/v1/rooms/${room.id}/members`, { method: 'POST', token: tokens[0], body: { username: name, role: 'member' } });
  }

  const pages = [];
  for (const token of tokens) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error('page error:', err));
    await page.goto(`${server.base}/call.html#room=${room.id}&token=${token}`);
    pages.push(page);
  }

  // Each page must receive audio with energy from the two others (stream ids p<participant>).
  const deadline = Date.now() + 60_000;
  let last = [];
  for (;;) {
    last = await Promise.all(pages.map((p) => p.evaluate(async () => {
      const call = /** @type {any} */ (window).webcall;
      return { me: call?.participantId, inbound: call ? await call.inboundAudio() : [] };
    })));
    const ok = last.every(({ me, inbound }) => {
      const heard = inbound.filter((s) => s.energy > 0 && s.packets > 50 && s.streamId !== `p${me}`);
      return new Set(heard.map((s) => s.streamId)).size >= 2;
    });
    if (ok) break;
    if (Date.now() > deadline) assert.fail(`not everyone heard everyone: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.log(JSON.stringify(last));
  for (const { me, inbound } of last) {
    assert.ok(me, 'joined with a participant id');
    assert.ok(!inbound.some((s) => s.streamId === `p${me}` && s.packets > 0), 'nobody hears themselves');
  }
});
