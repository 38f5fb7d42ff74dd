// Calls that stay up: CALLS calls in a row, each with PAGES Chromium browsers (separate
// processes, each with its own fake microphone and tone). The first call is held for
// SECONDS, the others for SHORT_SECONDS: a 1-in-5 failure to set a call up (everyone hearing
// everyone) would fail this run with probability 1 - 0.8^10 ≈ 0.9, and the long hold catches
// a call that dies after a while. While held, every 3 s every page's packets from every other
// page must have grown, every page must hear every other page's tone on its stream with
// growing energy (harness.mjs, hearing) and say "connected", and the server must never have
// seen a peer disconnected.
//
// Settings (environment):
//   WEBCALL_SOAK_CALLS          calls in a row (10)
//   WEBCALL_SOAK_PAGES          pages per call (3)
//   WEBCALL_SOAK_SECONDS        the first call's hold (60)
//   WEBCALL_SOAK_SHORT_SECONDS  the other calls' hold (6); set it to WEBCALL_SOAK_SECONDS to
//                               hold every call long (the form before: 10 x 60 s):
//     WEBCALL_SOAK_SHORT_SECONDS=60 npm test -- soak.test.mjs
// A longer run: WEBCALL_SOAK_CALLS=1 WEBCALL_SOAK_SECONDS=600 WEBCALL_SOAK_PAGES=4 npm test -- soak.test.mjs

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, sleep, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

const CALLS = Number(process.env.WEBCALL_SOAK_CALLS ?? 10);
const SECONDS = Number(process.env.WEBCALL_SOAK_SECONDS ?? 60);
const SHORT_SECONDS = Number(process.env.WEBCALL_SOAK_SHORT_SECONDS ?? 6);
const PAGES = Number(process.env.WEBCALL_SOAK_PAGES ?? 3);

let server;

before(async () => {
  server = await startServer();
});

after(() => server?.stop());

/** How long call `call` (1-based) is held. */
const holdOf = (call) => (call === 1 ? SECONDS : SHORT_SECONDS);
const held = Array.from({ length: CALLS }, (_, i) => holdOf(i + 1)).reduce((a, b) => a + b, 0);

test(`${CALLS} calls of ${PAGES} Chromium pages set up, the first held ${SECONDS} s, the others ${SHORT_SECONDS} s`, { timeout: (held + CALLS * 90) * 1000 }, async () => {
  const names = Array.from({ length: PAGES }, (_, i) => `soak${i}`);
  const { room, tokens } = await roomWith(server, names, 'Soak');
  const wavs = names.map((_, i) => toneWav(i));
  for (let call = 1; call <= CALLS; call++) {
    const label = `call ${call}/${CALLS}`;
    const browsers = await Promise.all(wavs.map((wav) => launchChromium(wav)));
    try {
      const pages = [];
      for (let i = 0; i < PAGES; i++) pages.push(await openCall(browsers[i], server.base, room.id, tokens[i]));
      const started = Date.now();
      await waitFor(pages, `${label}: not everyone heard everyone`, everyoneHearsEveryone);
      const joinedIn = Date.now() - started;
      const seconds = holdOf(call);
      const samples = await holdCall(server, pages, seconds, label);
      assert.ok(samples >= Math.max(1, Math.floor(seconds / 5)), `${label}: only ${samples} samples in ${seconds} s`);
      console.log(`${label}: everyone heard everyone after ${joinedIn} ms, then held ${seconds} s (${samples} samples, all alive)`);
    } finally {
      await Promise.all(browsers.map((b) => b.close()));
    }
    // Everyone left: the server holds no participant before the next call.
    for (let i = 0; i < 40; i++) {
      const m = await server.metrics();
      if ((m.get('sfu_participants') ?? 0) === 0) break;
      await sleep(500);
    }
    const m = await server.metrics();
    assert.equal(m.get('sfu_participants') ?? 0, 0, `${label}: participants left behind`);
  }
});
