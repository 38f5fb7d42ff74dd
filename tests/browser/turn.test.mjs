// Calls through TURN: Debian's coturn on loopback with the configuration docker-compose mounts
// (deploy/coturn/turnserver.conf), the server with the same `TURN_SHARED_SECRET`, and two
// Chromium pages forced to `iceTransportPolicy: 'relay'` (as a browser behind a firewall that
// lets nothing but TURN through). Each page must use the time-limited credential from
// `joined`, connect through a relayed candidate pair, and hold the call for a minute; a call
// outlives its credential, and when its relays are lost after the expiry it comes back with
// a fresh credential.
//
// coturn's command line changes only what a test must: it listens on 127.0.0.1 at a free port
// and relays from 127.0.0.1 (compose: every address, 3478), and it may relay to the SFU at
// 127.0.0.1: `--allowed-peer-ip=127.0.0.1` as compose allows SFU_PUBLIC_IP, plus
// `--allow-loopback-peers` because a test's SFU is on loopback and compose's never is.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, sample, sleep, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

const SECRET = 'browser-test-turn-secret';
const CONFIG = resolve(import.meta.dirname, '..', '..', 'deploy', 'coturn', 'turnserver.conf');

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

/**
 * coturn on a free port (or on `fixedPort`), once it listens (a port found free may be taken
 * first: retried).
 * @param {number} [fixedPort]
 */
async function startCoturn(fixedPort) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = fixedPort ?? await freePort();
    const child = spawn('turnserver', [
      '-c', CONFIG, '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
      `--static-auth-secret=${SECRET}`,
      // The SFU is on 127.0.0.1 too (see the top of this file).
      '--allowed-peer-ip=127.0.0.1', '--allow-loopback-peers',
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
    if (!pc) return { candidateType: undefined, relayProtocol: undefined, iceServers: [] };
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

/** The expiry (unix seconds) of the TURN REST username `<expiry>:<user>`. */
function expiryOf(username) {
  return Number(String(username).split(':')[0]);
}

test('a relay-only call outlives its TURN credential and, its relays lost after the expiry, comes back with a fresh one', { timeout: 240_000 }, async () => {
  // The shortest credential the server allows; coturn of its own, to stop and start again.
  const own = await startCoturn();
  let turnd = own.child;
  const short = await startServer({
    env: {
      TURN_URLS: `turn:127.0.0.1:${own.port}?transport=udp`,
      TURN_SHARED_SECRET: SECRET,
      TURN_CREDENTIAL_TTL_SECS: '60',
    },
  });
  try {
    const { room, tokens } = await roomWith(short, ['carol', 'dave'], 'TURN expiry test');
    const pages = [];
    for (let i = 0; i < 2; i++) {
      const browser = await launchChromium(toneWav(i));
      browsers.push(browser);
      pages.push(await openCall(browser, short.base, room.id, tokens[i], { beforeGoto: relayOnly }));
    }
    await waitFor(pages, 'the two pages did not hear each other through TURN', everyoneHearsEveryone);
    const before = await Promise.all(pages.map(selectedPath));
    const expiry = Math.max(...before.map((p) => expiryOf(p.iceServers[0].username)));

    // Past the expiry the allocations, made before it, still carry the call.
    await sleep(Math.max(0, expiry * 1000 + 2000 - Date.now()));
    const expired = await waitFor(pages, 'the call stopped when the TURN credentials expired', everyoneHearsEveryone, 5000);

    // Every relay is lost (coturn restarted: a new network would do the same). An ICE
    // restart with the expired credential would get no relay; the pages join again instead.
    turnd.kill('SIGKILL');
    await new Promise((r) => turnd.once('exit', r));
    turnd = (await startCoturn(own.port)).child;
    const lost = Date.now();
    const back = await waitFor(pages, 'the call did not come back after its relays were lost', (samples, prev) =>
      samples.every((s) => s.state === 'connected') && everyoneHearsEveryone(samples, prev), 60_000);
    const cameBackMs = Date.now() - lost;
    const after = await Promise.all(pages.map(selectedPath));
    for (const path of after) {
      assert.equal(path.candidateType, 'relay', `media goes through TURN again: ${JSON.stringify(path)}`);
      assert.ok(expiryOf(path.iceServers[0].username) > Date.now() / 1000, `a fresh credential: ${path.iceServers[0].username}`);
    }
    console.log(`relays lost after the credentials expired: heard again in ${cameBackMs} ms; ice restarts ${expired.map((s) => s.iceRestarts)} -> ${back.map((s) => s.iceRestarts)}, rejoins ${expired.map((s) => s.rejoins)} -> ${back.map((s) => s.rejoins)}`);
    // No ICE restart with the expired credential (it would gather no relay and only add its
    // 10 s deadline, static/js/call.js): each page joined again for a fresh one.
    for (let i = 0; i < 2; i++) {
      assert.equal(back[i].iceRestarts, expired[i].iceRestarts, `page ${i} made no futile ICE restart`);
      assert.ok(back[i].rejoins > expired[i].rejoins, `page ${i} joined again`);
    }
  } finally {
    short.stop();
    turnd.kill('SIGTERM');
  }
});
