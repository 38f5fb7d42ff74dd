// Firefox ESR (puppeteer-core) with a fake microphone, for the tests that run inside
// ./netns.sh (Firefox gathers no ICE candidate on loopback: `npm run test:firefox`).
//
// Firefox's fake microphone is a generated sine (media.navigator.streams.fake) at the
// frequency of media.navigator.audio.fake_frequency, so each page's analyser tells who it
// hears (harness.mjs) as with Chromium's WAV tones.

import puppeteer from 'puppeteer-core';

import { sessionFor, setTone } from './harness.mjs';

/** Firefox whose fake microphone sends a sine of `hz`. @param {number} hz */
export function launchFirefox(hz) {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.navigator.audio.fake_frequency': hz,
      // No sound server here: with the default backend an AudioContext stays suspended (its
      // resume() never settles), and the analysers that tell which tone a stream carries
      // never run. Firefox's mock audio backend runs them (and plays the call) on its own clock.
      'media.cubeb.force_mock_context': true,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
    },
  }).then((browser) => {
    fakeTones.set(browser, hz);
    return browser;
  });
}

/** The tone each Firefox launched here sends. */
const fakeTones = new WeakMap();

/**
 * A page of `firefox` signed in as `token`'s user, joined to room `roomId`'s call.
 * @param {import('puppeteer-core').Browser} firefox
 */
export async function openFirefoxCall(firefox, base, roomId, token) {
  const page = await firefox.newPage();
  setTone(page, fakeTones.get(firefox));
  page.on('pageerror', (err) => console.error('firefox page error:', err));
  await page.evaluateOnNewDocument((session) => {
    if (!sessionStorage.getItem('webcall.session')) sessionStorage.setItem('webcall.session', JSON.stringify(session));
  }, sessionFor(token));
  await page.goto(`${base}/rooms/${roomId}`);
  await page.locator('button::-p-text(Join call)').click();
  await page.waitForFunction(() => Boolean(/** @type {any} */ (window).webcall?.participantId));
  return page;
}
