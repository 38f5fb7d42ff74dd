// A full call in the app (issue 27, ROOM_MAX_PARTICIPANTS): with room for one participant,
// alice is in the call; bob opens the room and clicks "Join call", and the page tells him in
// words that the call is full. Pages fail the test on uncaught exceptions.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium, openCall, roomWith, sessionFor, toneWav } from './harness.mjs';
import { startServer } from './server.mjs';

let server;
/** @type {import('playwright-core').Browser} */
let browser;
const problems = [];

before(async () => {
  server = await startServer({ env: { ROOM_MAX_PARTICIPANTS: '1' } });
  browser = await launchChromium(toneWav(0));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the next joiner of a full call is told that it is full', { timeout: 120_000 }, async () => {
  const { room, tokens } = await roomWith(server, ['alice', 'bob']);
  await openCall(browser, server.base, room.id, tokens[0]);

  const context = await browser.newContext();
  await context.addInitScript((session) => {
    if (!sessionStorage.getItem('webcall.session')) sessionStorage.setItem('webcall.session', JSON.stringify(session));
  }, sessionFor(tokens[1]));
  const bob = await context.newPage();
  bob.on('pageerror', (err) => problems.push(String(err)));
  await bob.goto(`${server.base}/rooms/${room.id}`);
  await bob.getByRole('button', { name: 'Join call' }).click();
  await bob.getByText('This call is full. Try again when someone leaves.').waitFor({ timeout: 15_000 });
  assert.deepEqual(problems, []);
});
