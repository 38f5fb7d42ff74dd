// Calls that stay up: CALLS calls in a row, each with PAGES Chromium browsers (separate
// processes, each with its own fake microphone) held for SECONDS. Every 3 s every page's
// packets from every other page must have grown, every page must say "connected", and the
// server must never have seen a peer disconnected. A 1-in-5 drop would fail this run with
// probability 1 - 0.8^10 ≈ 0.9.
//
// A longer run: WEBCALL_SOAK_CALLS=1 WEBCALL_SOAK_SECONDS=600 WEBCALL_SOAK_PAGES=4 npm test -- soak.test.mjs

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, sleep, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

const CALLS = Number(process.env.WEBCALL_SOAK_CALLS ?? 10);
const SECONDS = Number(process.env.WEBCALL_SOAK_SECONDS ?? 60);
const PAGES = Number(process.env.WEBCALL_SOAK_PAGES ?? 3);

let server;

before(async () => {
  server = await startServer();
});

after(() => server?.stop());

test(`${CALLS} calls of ${PAGES} Chromium pages stay up for ${SECONDS} s each`, { timeout: CALLS * (SECONDS + 90) * 1000 }, async () => {
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
      const samples = await holdCall(server, pages, SECONDS, label);
      console.log(`${label}: everyone heard everyone after ${joinedIn} ms, then held ${SECONDS} s (${samples} samples, all alive)`);
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
