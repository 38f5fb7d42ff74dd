// Firefox and Chromium in one call (run inside ./netns.sh: `npm run test:firefox`). Firefox
// nominates on its first checks toward an ICE-lite server; before the SFU answered checks
// itself, it never connected. Both pages must hear each other and hold the call. Firefox sends
// toneHz(0) (firefox.mjs), Chromium toneHz(1), so each page's analyser tells who it hears.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, toneWav, waitFor,
} from './harness.mjs';
import { launchFirefox, openFirefoxCall } from './firefox.mjs';
import { startServer } from './server.mjs';
import { toneHz } from './wav.mjs';

const MEDIA_IP = process.env.WEBCALL_MEDIA_IP ?? '10.203.0.1';
const SECONDS = Number(process.env.WEBCALL_FIREFOX_SECONDS ?? 30);

let server;
let firefox;
let chromium;

before(async () => {
  server = await startServer({ env: { SFU_BIND: MEDIA_IP, SFU_PUBLIC_IP: MEDIA_IP } });
  firefox = await launchFirefox(toneHz(0));
  chromium = await launchChromium(toneWav(1));
});

after(async () => {
  await firefox?.close();
  await chromium?.close();
  server?.stop();
});

test(`Firefox and Chromium hear each other and hold a ${SECONDS} s call`, { timeout: (SECONDS + 120) * 1000 }, async () => {
  const { room, tokens } = await roomWith(server, ['fiona', 'chris'], 'Two engines');
  const ffPage = await openFirefoxCall(firefox, server.base, room.id, tokens[0]);
  const crPage = await openCall(chromium, server.base, room.id, tokens[1]);
  const pages = [ffPage, crPage];
  const started = Date.now();
  const heard = await waitFor(pages, 'Firefox and Chromium did not hear each other', everyoneHearsEveryone, 40_000);
  const summary = heard.map(({ me, state, tones, streams }) => ({ me, state, streams: Object.fromEntries(Object.entries(streams).map(([id, s]) => [id, `${tones[s.amps.indexOf(Math.max(...s.amps))]} Hz at ${Math.max(...s.amps).toFixed(3)}`])) }));
  console.log(`Firefox <-> Chromium: both heard each other after ${Date.now() - started} ms`, JSON.stringify(summary));
  assert.ok(heard.every((s) => s.state === 'connected'));
  await holdCall(server, pages, SECONDS, 'firefox+chromium');
});
