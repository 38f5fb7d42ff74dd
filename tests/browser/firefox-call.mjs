// Firefox and Chromium in one call (run inside ./netns.sh: `npm run test:firefox`). Firefox
// nominates on its first checks toward an ICE-lite server; before the SFU answered checks
// itself, it never connected. Both pages must hear each other and hold the call.
//
// Firefox's fake microphone is a generated sine (media.navigator.streams.fake), at the
// frequency of media.navigator.audio.fake_frequency: set to toneHz(0) here, and Chromium
// sends toneHz(1), so each page's analyser tells who it hears (harness.mjs hearing) in both
// engines, as in the Chromium-only calls.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, sessionFor, setTone, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';
import { toneHz } from './wav.mjs';

const MEDIA_IP = process.env.WEBCALL_MEDIA_IP ?? '10.203.0.1';
const SECONDS = Number(process.env.WEBCALL_FIREFOX_SECONDS ?? 30);

let server;
let firefox;
let chromium;

before(async () => {
  server = await startServer({ env: { SFU_BIND: MEDIA_IP, SFU_PUBLIC_IP: MEDIA_IP } });
  firefox = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.navigator.audio.fake_frequency': toneHz(0),
      // No sound server here: with the default backend an AudioContext stays suspended (its
      // resume() never settles), and the analysers that tell which tone a stream carries
      // never run. Firefox's mock audio backend runs them (and plays the call) on its own clock.
      'media.cubeb.force_mock_context': true,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
    },
  });
  chromium = await launchChromium(toneWav(1));
});

after(async () => {
  await firefox?.close();
  await chromium?.close();
  server?.stop();
});

test(`Firefox and Chromium hear each other and hold a ${SECONDS} s call`, { timeout: (SECONDS + 120) * 1000 }, async () => {
  const { room, tokens } = await roomWith(server, ['fiona', 'chris'], 'Two engines');
  const ffPage = await firefox.newPage();
  setTone(ffPage, toneHz(0));
  ffPage.on('pageerror', (err) => console.error('firefox page error:', err));
  await ffPage.evaluateOnNewDocument((session) => {
    if (!sessionStorage.getItem('webcall.session')) sessionStorage.setItem('webcall.session', JSON.stringify(session));
  }, sessionFor(tokens[0]));
  await ffPage.goto(`${server.base}/rooms/${room.id}`);
  await ffPage.locator('button::-p-text(Join call)').click();
  await ffPage.waitForFunction(() => Boolean(/** @type {any} */ (window).webcall?.participantId));
  const crPage = await openCall(chromium, server.base, room.id, tokens[1]);
  const pages = [ffPage, crPage];
  const started = Date.now();
  const heard = await waitFor(pages, 'Firefox and Chromium did not hear each other', everyoneHearsEveryone, 40_000);
  const summary = heard.map(({ me, state, tones, streams }) => ({ me, state, streams: Object.fromEntries(Object.entries(streams).map(([id, s]) => [id, `${tones[s.amps.indexOf(Math.max(...s.amps))]} Hz at ${Math.max(...s.amps).toFixed(3)}`])) }));
  console.log(`Firefox <-> Chromium: both heard each other after ${Date.now() - started} ms`, JSON.stringify(summary));
  assert.ok(heard.every((s) => s.state === 'connected'));
  await holdCall(server, pages, SECONDS, 'firefox+chromium');
});
