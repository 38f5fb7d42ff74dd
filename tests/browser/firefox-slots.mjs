// Firefox in a large room (run inside ./netns.sh with firefox-call.mjs: `npm run
// test:firefox`). Forced large with two audio slots, as slots.test.mjs does with Chromium
// alone: Firefox gets its slots in the server's offer at join, reads who speaks on each from
// the CSRC (getContributingSources), and must hear the current speakers' tones on the slots
// that name them; the Chromium pages must hear Firefox the same way once it speaks.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium, openCall, roomWith, sample, toneWav } from './harness.mjs';
import { launchFirefox, openFirefoxCall } from './firefox.mjs';
import { startServer } from './server.mjs';
import { expectHearing, setMuted } from './slot-hearing.mjs';
import { toneHz } from './wav.mjs';

const MEDIA_IP = process.env.WEBCALL_MEDIA_IP ?? '10.203.0.1';
const SECONDS = Number(process.env.WEBCALL_FIREFOX_SECONDS ?? 30);

let server;
let firefox;
const chromiums = [];

before(async () => {
  server = await startServer({
    env: { SFU_BIND: MEDIA_IP, SFU_PUBLIC_IP: MEDIA_IP, SFU_AUDIO_SLOTS: '2', SFU_AUDIO_SLOTS_ABOVE: '0' },
  });
  firefox = await launchFirefox(toneHz(0));
  for (let i = 1; i <= 3; i++) chromiums.push(await launchChromium(toneWav(i)));
});

after(async () => {
  await firefox?.close();
  await Promise.all(chromiums.map((b) => b.close()));
  server?.stop();
});

test(`Firefox hears and is heard on audio slots, named by CSRC, and holds it ${SECONDS} s`, { timeout: (SECONDS + 180) * 1000 }, async () => {
  const { room, tokens } = await roomWith(server, ['fiona', 'chris', 'carl', 'cora'], 'Large, two engines');
  const pages = [await openFirefoxCall(firefox, server.base, room.id, tokens[0])];
  for (let i = 1; i <= 3; i++) pages.push(await openCall(chromiums[i - 1], server.base, room.id, tokens[i]));
  const others = (i, talkers) => talkers.filter((t) => t !== i);

  // Two Chromium pages speak: Firefox (muted) hears both on its two slots.
  const muted = new Set([0, 3]);
  for (const i of muted) await setMuted(pages[i], true);
  await expectHearing(pages, muted, (i) => others(i, [1, 2]), 'Chromium 1 and 2 speak', 10_000);
  const [ff] = await sample(pages.slice(0, 1));
  assert.equal(ff.slots.length, 2, `Firefox has two slots: ${JSON.stringify(ff.slots)}`);
  assert.equal(ff.serverOffers, 1, 'Firefox got its slots in one offer, at join');

  // Firefox takes over from Chromium 2: everyone hears it where 2 was, and holds that.
  await setMuted(pages[2], true);
  muted.add(2);
  await setMuted(pages[0], false);
  muted.delete(0);
  await expectHearing(pages, muted, (i) => others(i, [0, 1]), 'Firefox and Chromium 1 speak', SECONDS * 1000);
  const offers = (await sample(pages)).map((s) => s.serverOffers);
  assert.deepEqual(offers, [1, 1, 1, 1], 'nobody was renegotiated after joining');
});
