// Three people join one room's call from the app's room page (separate Chromium processes,
// each with its own fake microphone and tone) and hear each other through the SFU; one leaves
// and a late joiner takes over the freed m-line: the others must attribute the audio to the
// new participant (its tone on its stream, not the leaver's) and keep hearing it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

let server;
const browsers = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  server?.stop();
});

test('three browsers hear each other through the SFU, and a late joiner takes a leaver\'s place', { timeout: 120_000 }, async () => {
  const names = ['alice', 'bob', 'carol', 'dave'];
  const { room, tokens } = await roomWith(server, names, 'Browser test');
  for (let i = 0; i < 4; i++) browsers.push(await launchChromium(toneWav(i)));
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await openCall(browsers[i], server.base, room.id, tokens[i]));

  const all = await waitFor(pages, 'not everyone heard everyone', everyoneHearsEveryone);
  for (const { me, inbound } of all) {
    assert.ok(me, 'joined with a participant id');
    assert.ok(!inbound.some((s) => s.streamId === `p${me}` && s.packets > 0), 'nobody hears themselves');
  }

  // Alice leaves; Dave joins. Bob's and Carol's pages reuse Alice's m-line for Dave (same
  // SSRC, new msid): they must attribute the audio to Dave (his tone on his stream; Alice's
  // tone, no longer in the call, nowhere) and keep hearing him.
  await pages[0].getByRole('button', { name: 'Leave call' }).click();
  await pages[0].context().close();
  pages[0] = await openCall(browsers[3], server.base, room.id, tokens[3]);
  await waitFor(pages, 'bob and carol did not hear dave in alice\'s place', everyoneHearsEveryone);
  await holdCall(server, pages, 6, 'dave in alice\'s place', 2000);
});
