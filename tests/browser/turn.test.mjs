// Calls through TURN: Debian's coturn on loopback with `use-auth-secret`, the server with the
// same `TURN_SHARED_SECRET`, and two Chromium pages forced to `iceTransportPolicy: 'relay'`
// (as a browser behind a firewall that lets nothing but TURN through). Each page must use the
// time-limited credential from `joined`, connect through a relayed candidate pair, and hold
// the call for a minute.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

const SECRET = 'browser-test-turn-secret';

// A minute by default; CI holds it shorter (package.json `test:ci`).
const HOLD_SECONDS = Number(process.env.WEBCALL_TURN_HOLD_SECONDS ?? 60);
let server;
let coturn;
const browsers = [];

/** A free loopback port (coturn listens on it over UDP and TCP). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP on 127.0.0.1:`port` within `ms`. */
async function listening(port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const c = connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** coturn on a free port, once it listens (a port found free may be taken first: retried). */
async function startCoturn() {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn('turnserver', [
      '-n', '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
      '--use-auth-secret', `--static-auth-secret=${SECRET}`, '--realm=webcall.test',
      // The SFU is on 127.0.0.1 too; coturn refuses loopback peers unless told.
      '--allow-loopback-peers', '--no-tls', '--no-dtls', '--no-cli', '--log-file=stdout',
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const spawned = new Promise((resolve, reject) => {
      child.on('spawn', resolve);
      child.on('error', (err) => reject(new Error(`coturn's turnserver did not start (apt-get install coturn): ${err.message}`)));
    });
    await spawned;
    if (await listening(port, 5000)) return { child, port };
    child.kill('SIGKILL');
  }
  throw new Error('coturn did not listen on any of 5 free ports');
}

before(async () => {
  const started = await startCoturn();
  coturn = started.child;
  server = await startServer({
    env: { TURN_URLS: `turn:127.0.0.1:${started.port}?transport=udp`, TURN_SHARED_SECRET: SECRET },
  });
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  server?.stop();
  coturn?.kill('SIGTERM');
});

/** Makes every RTCPeerConnection of the page relay-only, and keeps them for inspection. */
async function relayOnly(page) {
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    /** @type {any} */ (window).peerConnections = [];
    window.RTCPeerConnection = class extends Native {
      /** @param {RTCConfiguration} [config] */
      constructor(config) {
        super({ ...config, iceTransportPolicy: 'relay' });
        /** @type {any} */ (window).peerConnections.push(this);
      }
    };
  });
}

/** The page's selected candidate pair: local candidate type and the TURN username used. */
function selectedPath(page) {
  return page.evaluate(async () => {
    const pcs = /** @type {any} */ (window).peerConnections;
    const pc = pcs[pcs.length - 1];
    const stats = await pc.getStats();
    let pair;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    const local = pair && stats.get(pair.localCandidateId);
    return {
      candidateType: local?.candidateType,
      relayProtocol: local?.relayProtocol,
      iceServers: pc.getConfiguration().iceServers,
    };
  });
}

test(`two browsers allowed only TURN relay call through coturn with per-join credentials, for ${HOLD_SECONDS} s`, { timeout: 180_000 }, async () => {
  const { room, tokens } = await roomWith(server, ['alice', 'bob'], 'TURN test');
  for (let i = 0; i < 2; i++) browsers.push(await launchChromium(toneWav(i)));
  const pages = [];
  for (let i = 0; i < 2; i++) {
    pages.push(await openCall(browsers[i], server.base, room.id, tokens[i], { beforeGoto: relayOnly }));
  }
  await waitFor(pages, 'the two pages did not hear each other through TURN', everyoneHearsEveryone);
  const paths = await Promise.all(pages.map(selectedPath));
  for (const path of paths) {
    assert.equal(path.candidateType, 'relay', `media goes through TURN: ${JSON.stringify(path)}`);
    const [turn] = path.iceServers;
    assert.match(String(turn.username), /^\d+:\d+$/, 'a TURN REST username (expiry:user)');
  }
  assert.notEqual(paths[0].iceServers[0].username, paths[1].iceServers[0].username, 'a credential per user');
  const samples = await holdCall(server, pages, HOLD_SECONDS, 'relay');
  // A sample every 3 s (and the time it takes): 15 in a minute.
  assert.ok(samples >= Math.floor(HOLD_SECONDS / 4), `held the call ${HOLD_SECONDS} s with ${samples} samples`);
});
