// Who each page hears on its audio slots (a large room, docs/sfu.md "Audio slots"), shared by
// the Chromium slot test and the Firefox one: a slot counts for the page its latest CSRC names
// when that page's tone is on it, and a page must never hear itself or a muted page.

import assert from 'node:assert/strict';

import { sample, sleep, TONE_FLOOR, TONE_MARGIN } from './harness.mjs';

/** A CSRC older than this (ms) no longer says who a slot carries: its speaker stopped. */
const FRESH_MS = 400;

/**
 * Who each page hears on its slots now: a slot counts for the page its latest CSRC names
 * when that page's tone is on it, 20 dB above every other tone. `wrong` lists what must never
 * happen: a page hearing its own tone, a muted page's tone, or a tone on a slot whose CSRC
 * names someone else.
 * @param {import('./harness.mjs').Sample[]} samples
 * @param {Set<number>} muted page indices
 */
export function slotHearing(samples, muted) {
  const pageOf = new Map(samples.map((s, j) => [s.me, j]));
  /** @type {Set<number>[]} */
  const heard = samples.map(() => new Set());
  const wrong = [];
  const notes = [];
  samples.forEach((s, i) => {
    if (s.audioContext !== 'running') {
      wrong.push(`page ${i}: AudioContext ${s.audioContext}`);
      return;
    }
    for (const slot of s.slots) {
      const listened = s.streams[slot.streamId];
      if (!listened) {
        notes.push(`page ${i}: no audio element plays ${slot.streamId}`);
        continue;
      }
      const top = Math.max(...listened.amps);
      const carried = s.tones.filter((_, k) => listened.amps[k] >= TONE_FLOOR && listened.amps[k] * TONE_MARGIN >= top);
      const carriedPages = carried.map((hz) => samples.findIndex((o) => o.tone === hz));
      if (carriedPages.includes(i)) wrong.push(`page ${i} hears itself on ${slot.streamId}`);
      for (const j of carriedPages) if (muted.has(j)) wrong.push(`page ${i} hears muted page ${j} on ${slot.streamId}`);
      const fresh = slot.age < FRESH_MS;
      const named = fresh ? pageOf.get(slot.participantId) : undefined;
      if (!fresh) {
        notes.push(`page ${i}: ${slot.streamId} idle (${Math.round(slot.age)} ms) carrying ${carried}`);
        continue;
      }
      if (named === undefined) {
        notes.push(`page ${i}: ${slot.streamId} CSRC ${slot.source} names no page (participant ${slot.participantId})`);
        continue;
      }
      if (carried.length === 1 && carriedPages[0] === named) heard[i].add(named);
      else notes.push(`page ${i}: ${slot.streamId} names page ${named} (${samples[named].tone} Hz) but carries ${carried} Hz`);
    }
  });
  return { heard, wrong, notes };
}

/** A page muted this long ago (ms) has left every listener's analyser window and jitter buffer. */
const MUTE_SETTLE_MS = 2_000;

/**
 * Waits until every page hears exactly `want(i)` on its slots, then holds that for `holdMs`,
 * sampling: a single sample with anything `wrong` fails at once (a page muted just now gets
 * MUTE_SETTLE_MS to fall silent everywhere).
 */
export async function expectHearing(pages, muted, want, what, holdMs) {
  const started = Date.now();
  const deadline = started + 20_000;
  let matched = null;
  for (;;) {
    const samples = await sample(pages);
    const settled = Date.now() - started >= MUTE_SETTLE_MS;
    const { heard, wrong, notes } = slotHearing(samples, settled ? muted : new Set());
    assert.deepEqual(wrong, [], `${what}: ${wrong.join('; ')}`);
    const diffs = pages.map((_, i) => {
      const got = [...heard[i]].sort();
      const wanted = [...want(i)].sort();
      return JSON.stringify(got) === JSON.stringify(wanted) ? null : `page ${i} hears ${got}, wants ${wanted}`;
    }).filter(Boolean);
    if (diffs.length === 0) {
      matched ??= Date.now();
      if (Date.now() - matched >= holdMs) return samples;
    } else if (matched !== null) {
      assert.fail(`${what}: heard right, then not after ${Date.now() - matched} ms: ${diffs.join('; ')}; ${notes.join('; ')}`);
    } else if (Date.now() > deadline) {
      assert.fail(`${what}: ${diffs.join('; ')}; ${notes.join('; ')}`);
    }
    await sleep(700);
  }
}

/**
 * Mutes or unmutes the page's microphone with the call's mute button, and waits until the
 * button says so. Through evaluate, so it works on Playwright's and Puppeteer's pages alike.
 * @param {{evaluate: Function}} page @param {boolean} on
 */
export async function setMuted(page, on) {
  const press = (wanted) => {
    const button = document.querySelector('button.mute-button');
    if (!button) return 'no mute button';
    if (button.getAttribute('aria-pressed') !== String(wanted)) button.click();
    return null;
  };
  const problem = await page.evaluate(press, on);
  assert.equal(problem, null);
  const deadline = Date.now() + 10_000;
  while (!(await page.evaluate((wanted) => document.querySelector('button.mute-button')?.getAttribute('aria-pressed') === String(wanted), on))) {
    assert.ok(Date.now() < deadline, `the mute button did not turn ${on ? 'on' : 'off'}`);
    await sleep(100);
  }
}
