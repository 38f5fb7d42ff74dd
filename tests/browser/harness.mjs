// What the call tests share: Chromium with a fake microphone, users and a room on the real
// server, the call page, and sampling what each page hears: its inbound audio through
// getStats() and, per remote stream, which page's tone is in it (an AnalyserNode on each
// remote `audio[data-stream]` element of the room page, static/js/ui/room-view.js).
//
// Each page sends one constant tone of its own (wav.mjs toneHz). "Page i hears page j" means,
// between two samples: the stream `p<j's participant id>` on page i carries j's tone, 20 dB
// above every other page's tone and above a noise floor, and page i's getStats energy from
// that stream grew. Besides, no stream on page i carries page i's own tone, nor the tone of a
// page that is not in the call, nor any page's tone on a stream of nobody in the call.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before } from 'node:test';
import { chromium } from 'playwright-core';

import { PASSWORD, REGISTRATION_SECRET } from './server.mjs';
import { toneHz, writeToneWav } from './wav.mjs';

const wavDir = mkdtempSync(join(tmpdir(), 'webcall-wav-'));

/**
 * WEBCALL_TEST_REQUIRE_ALL=1 (CI): a test that can't run here fails with the reason instead of
 * being skipped, since node's test runner counts a skipped test as a pass.
 */
export const REQUIRE_ALL = process.env.WEBCALL_TEST_REQUIRE_ALL === '1';

/** The reasons needs() has already turned into a failing hook. */
const failingHooks = new Set();

/**
 * node:test options for a test that needs what this machine may lack: `reason` says what is
 * missing (false when nothing is). The test is skipped with the reason; with REQUIRE_ALL it
 * fails with it instead, through a `before` hook that fails every test of the file.
 * @param {string | false} reason
 * @returns {{skip?: string}}
 */
export function needs(reason) {
  if (!reason) return {};
  if (!REQUIRE_ALL) return { skip: reason };
  if (!failingHooks.has(reason)) {
    failingHooks.add(reason);
    before(() => assert.fail(`can't run here, and WEBCALL_TEST_REQUIRE_ALL is set: ${reason}`));
  }
  return {};
}

/**
 * Skips the running test `t` with `reason`, or with REQUIRE_ALL fails it.
 * @param {import('node:test').TestContext} t
 * @param {string} reason
 */
export function skipOrFail(t, reason) {
  if (REQUIRE_ALL) assert.fail(`can't run here, and WEBCALL_TEST_REQUIRE_ALL is set: ${reason}`);
  t.skip(reason);
}

/** The tones any page of these tests may send (Hz): a stream carrying one is heard from that page. */
export const TONES = Array.from({ length: 10 }, (_, i) => toneHz(i));

/** The tone (Hz) each fake-microphone WAV, and so each browser launched with it, sends. */
const wavTones = new Map();
/** @type {WeakMap<object, number>} browser -> Hz */
const browserTones = new WeakMap();
/** @type {WeakMap<object, number>} page -> Hz, for pages of other browsers (Firefox) */
const pageTones = new WeakMap();

/** A fake-microphone WAV per page, each with its own constant tone (toneHz(index)). */
export function toneWav(index) {
  const path = join(wavDir, `tone-${index}.wav`);
  writeToneWav(path, 10, toneHz(index));
  wavTones.set(path, toneHz(index));
  return path;
}

/** Says which tone `page` sends, for a page whose browser the harness did not launch. */
export function setTone(page, hz) {
  pageTones.set(page, hz);
}

/**
 * The tone `page` sends: set with setTone, or its Chromium's WAV (launchChromium(toneWav(i))).
 * @returns {number | undefined}
 */
export function toneOf(page) {
  return pageTones.get(page) ?? browserTones.get(page.context?.().browser?.());
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

/**
 * A Chromium process of its own (its own network stack, as two people's machines have).
 * @param {string} wav
 * @param {string[]} [extraArgs] more command-line switches
 */
export async function launchChromium(wav, extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [...chromiumArgs(wav), ...extraArgs],
  });
  if (wavTones.has(wav)) browserTones.set(browser, wavTones.get(wav));
  return browser;
}

/**
 * The local candidate of the page's selected ICE pair, from the page's own stats (Chromium
 * names the pair on its transport, Firefox marks it selected): `protocol` ('udp' / 'tcp'),
 * `candidateType`, and for a relay `relayProtocol`; null before there is one.
 * @param {any} page a Playwright or Puppeteer page
 * @returns {Promise<{protocol?: string, candidateType?: string, relayProtocol?: string} | null>}
 */
export function selectedLocalCandidate(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).webcall?.pc;
    if (!pc) return null;
    /** @type {Map<string, any>} */
    const stats = new Map();
    (await pc.getStats()).forEach((/** @type {any} */ r) => stats.set(r.id, r));
    const transport = [...stats.values()].find((r) => r.type === 'transport' && r.selectedCandidatePairId);
    const pair = transport
      ? stats.get(transport.selectedCandidatePairId)
      : [...stats.values()].find((r) => r.type === 'candidate-pair' && (r.selected || r.nominated) && r.state === 'succeeded');
    const local = pair && stats.get(pair.localCandidateId);
    return local ? { protocol: local.protocol, candidateType: local.candidateType, relayProtocol: local.relayProtocol } : null;
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

// What a page hears of another, measured here: its tone at an amplitude of about 0.03
// (-30 dBFS: the sender's noise suppression takes 20 dB off a constant tone; Firefox's
// generated tone arrives at 0.1), every other tone below 0.0001, and getStats energy growing
// by about 9e-4 a second (an audio level of 0.03).
/** How many of a stream's latest samples are judged: 341 ms at 48 kHz. */
const ANALYSER_SIZE = 16_384;
/** A tone's amplitude (full scale 1) below this is not there: -50 dBFS. */
export const TONE_FLOOR = 0.003;
/** The sender's tone must be this many times (20 dB) the amplitude of every other tone. */
export const TONE_MARGIN = 10;
/** The mean audio level (getStats) a heard stream must keep up between two samples: -40 dBFS. */
const MIN_LEVEL = 0.01;

/**
 * @typedef {{rms: number, amps: number[]}} Listened per remote stream: its RMS and the
 *   amplitude of each tone of `tones`, over the last ANALYSER_SIZE samples
 * @typedef {{
 *   me: number | null | undefined, state: string | undefined, rejoins: number, iceRestarts: number,
 *   inbound: import('../../static/js/call.js').InboundAudio[], at: number, tone: number | undefined,
 *   tones: number[], streams: Record<string, Listened>, audioContext: string,
 *   slots: {streamId: string, participantId: number | null, source: number, age: number}[],
 *   serverOffers: number,
 * }} Sample
 */

/**
 * In the page (through evaluate: outside its CSP). Each remote `audio[data-stream]` element
 * gets, once, a MediaStreamSource -> AnalyserNode (kept on window for the next sample); each
 * stream's last `size` samples are measured at each of `tones` (Goertzel, Hann window; the
 * best of ±4 Hz, for a sender whose tone is a little off). Chromium gives WebAudio a remote
 * stream's samples only while a media element plays it: the page's own element does.
 * @param {{tones: number[], size: number}} arg
 */
async function listenInPage({ tones, size }) {
  const w = /** @type {any} */ (window);
  /** @type {{ctx: AudioContext, taps: Map<HTMLMediaElement, {stream: MediaStream, source: AudioNode, analyser: AnalyserNode}>, hann: Float32Array}} */
  const ears = w.webcallTestEars ??= {
    ctx: new AudioContext(),
    taps: new Map(),
    hann: Float32Array.from({ length: size }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / (size - 1))),
  };
  const { ctx, taps, hann } = ears;
  // Where no audio backend runs (Firefox without a sound server), resume() never settles.
  if (ctx.state !== 'running') await Promise.race([ctx.resume().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
  if (ctx.state !== 'running') return { audioContext: ctx.state, streams: {} };
  for (const [el, tap] of taps) {
    if (!el.isConnected || el.srcObject !== tap.stream) {
      tap.source.disconnect();
      taps.delete(el);
    }
  }
  let fresh = false;
  for (const el of /** @type {NodeListOf<HTMLAudioElement>} */ (document.querySelectorAll('audio[data-stream]'))) {
    const stream = el.srcObject;
    if (taps.has(el) || !(stream instanceof MediaStream) || stream.getAudioTracks().length === 0) continue;
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = size;
    // Pulled by the graph through a silent gain: nothing more is played.
    const silent = ctx.createGain();
    silent.gain.value = 0;
    source.connect(analyser);
    analyser.connect(silent);
    silent.connect(ctx.destination);
    taps.set(el, { stream, source, analyser });
    fresh = true;
  }
  // A new analyser holds zeros until a whole window has played through it.
  if (fresh) await new Promise((r) => setTimeout(r, (size / ctx.sampleRate) * 1000 + 100));
  let windowSum = 0;
  for (const v of hann) windowSum += v;
  /** @param {Float32Array} x @param {number} hz */
  const amplitude = (x, hz) => {
    const omega = (2 * Math.PI * hz) / ctx.sampleRate;
    const coeff = 2 * Math.cos(omega);
    let s1 = 0;
    let s2 = 0;
    for (let n = 0; n < x.length; n++) {
      const s0 = x[n] * hann[n] + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const re = s1 - s2 * Math.cos(omega);
    const im = s2 * Math.sin(omega);
    return (2 * Math.hypot(re, im)) / windowSum;
  };
  /** @type {Record<string, {rms: number, amps: number[]}>} */
  const streams = {};
  const x = new Float32Array(size);
  for (const [el, tap] of taps) {
    tap.analyser.getFloatTimeDomainData(x);
    let sq = 0;
    for (const v of x) sq += v * v;
    const amps = tones.map((hz) => Math.max(amplitude(x, hz - 4), amplitude(x, hz), amplitude(x, hz + 4)));
    streams[String(el.dataset.stream)] = { rms: Math.sqrt(sq / size), amps };
  }
  return { audioContext: ctx.state, streams };
}

/**
 * Each page's participant id, call state, inbound audio (static/js/call.js) and, per remote
 * stream, which tones it carries now.
 * @returns {Promise<Sample[]>}
 */
export function sample(pages) {
  const tones = [...new Set([...TONES, ...pages.map(toneOf).filter((hz) => hz !== undefined)])];
  return Promise.all(pages.map(async (p) => {
    const listened = await p.evaluate(listenInPage, { tones, size: ANALYSER_SIZE });
    const call = await p.evaluate(async () => {
      const webcall = /** @type {any} */ (window).webcall;
      return {
        me: webcall?.participantId,
        state: webcall?.state,
        rejoins: webcall?.rejoins ?? 0,
        iceRestarts: webcall?.iceRestarts ?? 0,
        inbound: webcall ? await webcall.inboundAudio() : [],
        slots: webcall?.slotSpeakers?.() ?? [],
        serverOffers: webcall?.serverOffers ?? 0,
      };
    });
    return { ...call, at: Date.now(), tone: toneOf(p), tones, ...listened };
  }));
}

/** Packets per stream a page has received. */
export function packetsByStream({ inbound }) {
  const out = new Map();
  for (const s of inbound) out.set(s.streamId, Math.max(out.get(s.streamId) ?? 0, s.packets));
  return out;
}

/** getStats energy per stream a page has received (cumulative). */
function energyByStream({ inbound }) {
  const out = new Map();
  for (const s of inbound) out.set(s.streamId, Math.max(out.get(s.streamId) ?? 0, s.energy));
  return out;
}

/** The tones (Hz) a stream carries: above the floor and within 20 dB of its strongest tone. */
function carried(listened, tones) {
  const top = Math.max(...listened.amps);
  return tones.filter((_, k) => listened.amps[k] >= TONE_FLOOR && listened.amps[k] * TONE_MARGIN >= top);
}

/** The tones (Hz) stream `id` carries on the page `s` was sampled from ([] without an analyser on it). */
export function tonesOn(s, id) {
  return s.streams[id] ? carried(s.streams[id], s.tones) : [];
}

/** A stream's strongest tones and RMS, for messages. */
function showTones(listened, tones) {
  const top = tones.map((hz, k) => ({ hz, a: listened.amps[k] })).sort((a, b) => b.a - a.a).slice(0, 3);
  return `${top.map(({ hz, a }) => `${hz} Hz ${a.toFixed(4)}`).join(', ')}; rms ${listened.rms.toFixed(4)}`;
}

/**
 * Who hears whom between two samples of the same pages (see the head of this file).
 * `heard[i]` holds the indices of the pages page i hears; `missing` says why each other pair
 * is not heard; `wrong` lists what no page should ever hear (itself, a page not in this call,
 * any page's tone on a stream that is no page's in this call).
 * @param {Sample[] | undefined} prev
 * @param {Sample[]} cur
 * @returns {{heard: Set<number>[], missing: string[], wrong: string[]}}
 */
export function hearing(prev, cur) {
  const missing = [];
  const wrong = [];
  const heard = cur.map(() => new Set());
  const inCall = new Set(cur.map((s) => s.tone));
  /** @type {Map<string, number>} stream id -> page index */
  const pageOf = new Map();
  cur.forEach((s, j) => { if (s.me) pageOf.set(`p${s.me}`, j); });
  cur.forEach((s, i) => {
    const who = `page ${i} (p${s.me}, ${s.tone} Hz)`;
    if (!s.me) {
      missing.push(`page ${i} has not joined`);
      return;
    }
    assert.ok(s.tone !== undefined, `the harness does not know which tone page ${i} sends (setTone)`);
    assert.equal(cur.filter((o) => o.tone === s.tone).length, 1, `two pages of one call send ${s.tone} Hz: give each its own tone`);
    if (s.audioContext !== 'running') {
      missing.push(`${who}: its AudioContext is ${s.audioContext}, so nothing can be told of what it hears`);
      return;
    }
    const before = prev?.[i]?.me === s.me ? prev[i] : undefined;
    const streams = new Set([...Object.keys(s.streams), ...s.inbound.map((x) => x.streamId)]);
    for (const id of streams) {
      if (id === `p${s.me}` && (packetsByStream(s).get(id) ?? 0) > 0) wrong.push(`${who} receives its own stream ${id}`);
      const listened = s.streams[id];
      if (!listened) continue;
      const tones = carried(listened, s.tones);
      if (tones.includes(s.tone)) wrong.push(`${who} hears itself: ${id} carries its own ${s.tone} Hz (${showTones(listened, s.tones)})`);
      for (const hz of tones.filter((t) => !inCall.has(t))) {
        wrong.push(`${who}: ${id} carries ${hz} Hz, a tone no page in this call sends (${showTones(listened, s.tones)})`);
      }
      if (!pageOf.has(id) && tones.some((t) => t !== s.tone && inCall.has(t))) {
        wrong.push(`${who}: ${id} is no page's stream in this call, yet carries ${tones} Hz (${showTones(listened, s.tones)})`);
      }
    }
    cur.forEach((o, j) => {
      if (j === i || !o.me) return;
      const id = `p${o.me}`;
      const from = `${who} from page ${j} on ${id}`;
      const listened = s.streams[id];
      if (!listened) {
        missing.push(`${from}: no audio element plays ${id} (streams: ${Object.keys(s.streams).join(' ') || 'none'})`);
        return;
      }
      const k = s.tones.indexOf(/** @type {number} */ (o.tone));
      const amp = listened.amps[k];
      const rival = Math.max(0, ...listened.amps.filter((_, m) => m !== k));
      if (amp < TONE_FLOOR || amp < TONE_MARGIN * rival) {
        missing.push(`${from}: not its ${o.tone} Hz tone (${showTones(listened, s.tones)})`);
        return;
      }
      const now = energyByStream(s).get(id) ?? 0;
      const then = before && energyByStream(before).get(id);
      if (then === undefined || before === undefined) {
        missing.push(`${from}: no earlier sample of ${id} to see its energy grow`);
        return;
      }
      const seconds = (s.at - before.at) / 1000;
      if (now - then < MIN_LEVEL ** 2 * seconds) {
        missing.push(`${from}: its energy grew ${(now - then).toExponential(2)} in ${seconds.toFixed(1)} s (${then.toFixed(4)} -> ${now.toFixed(4)})`);
        return;
      }
      heard[i].add(j);
    });
  });
  return { heard, missing, wrong };
}

/** Waits until `ok(samples, previous samples)` holds, failing with the last samples after `ms`. */
export async function waitFor(pages, what, ok, ms = 30_000) {
  const deadline = Date.now() + ms;
  /** @type {Sample[] | undefined} */
  let prev;
  for (;;) {
    const last = await sample(pages);
    if (ok(last, prev)) return last;
    if (Date.now() > deadline) {
      const { missing, wrong } = hearing(prev, last);
      const calls = last.map(({ me, state, rejoins, iceRestarts, inbound }) => ({ me, state, rejoins, iceRestarts, inbound }));
      assert.fail(`${what}: ${[...wrong, ...missing].join('; ') || 'everyone hears everyone'}; ${JSON.stringify(calls)}`);
    }
    prev = last;
    await sleep(500);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Every page hears every other page (its tone on its stream, energy growing since `prev`),
 * and nothing it should not.
 * @param {Sample[]} samples
 * @param {Sample[] | undefined} prev
 */
export function everyoneHearsEveryone(samples, prev) {
  const { missing, wrong } = hearing(prev, samples);
  return missing.length === 0 && wrong.length === 0;
}

/**
 * Holds the call for `seconds`, sampling every `every` ms: on every page, every other page's
 * packets must keep growing and its tone be heard on its stream with growing energy, nothing
 * wrong heard (hearing), every page connected, and the server must never see a peer
 * disconnected. Returns the number of samples taken.
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
    /** @type {string[]} everything wrong in this period, in one message */
    const problems = [];
    cur.forEach((page, i) => {
      if (page.state !== 'connected') problems.push(`page ${i} is ${page.state}`);
      const before = packetsByStream(prev[i]);
      const now = packetsByStream(page);
      for (const stream of expected[i]) {
        const grew = (now.get(stream) ?? 0) - (before.get(stream) ?? 0);
        // 50 packets/s of Opus; a third of that per period leaves room for a loaded CPU.
        if (grew < (every / 1000) * 15) problems.push(`page ${i} got ${grew} packets from ${stream} in ${every} ms`);
      }
    });
    const { missing, wrong } = hearing(prev, cur);
    problems.push(...wrong.map((w) => `heard what no page should: ${w}`), ...missing.map((w) => `not heard: ${w}`));
    if (problems.length > 0) assert.fail(`${label} +${at}s: ${problems.join('; ')}`);
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
