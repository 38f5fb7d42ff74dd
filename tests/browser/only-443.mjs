// Calls from networks that pass only HTTPS (run inside ./netns.sh with the Firefox tests:
// `npm run test:firefox`). nftables in the test's own network namespace lets the browsers
// reach nothing but TCP 443 (and the web app on loopback); coturn serves TURN over TLS on
// 10.203.0.1:443 with the configuration docker-compose mounts (deploy/coturn/turnserver.conf)
// and a certificate made for the test; the server hands out per-join TURN REST credentials.
// Two Chromium pages (toneHz(1), toneHz(2)) must call through the relay and hold it.
// Firefox is not in it yet: with the test's self-signed certificate its TURN/TLS fails ("your
// TURN server appears to be broken"), even launched with acceptInsecureCerts; it needs the
// certificate in its profile's trust store.
//
// What changes from compose, and why: coturn listens on the namespace's address and relays
// from it, may relay to the SFU there (`--allowed-peer-ip`, as compose allows SFU_PUBLIC_IP),
// and takes its relay ports from 20000-20999, below the kernel's ephemeral range, so the
// firewall can tell coturn's relay traffic (the server side, always allowed) from the
// browsers' own UDP (dropped).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, holdCall, launchChromium, openCall, roomWith, selectedLocalCandidate, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

const MEDIA_IP = process.env.WEBCALL_MEDIA_IP ?? '10.203.0.1';
const SECONDS = Number(process.env.WEBCALL_ONLY_443_SECONDS ?? 60);
const SECRET = 'browser-test-turn-secret';
const CONFIG = resolve(import.meta.dirname, '..', '..', 'deploy', 'coturn', 'turnserver.conf');
const TABLE = 'webcall_only_443';

/** Lets nothing through but TCP 443, loopback (the web app) and coturn's relays (20000-20999). */
function only443() {
  execFileSync('nft', ['-f', '-'], {
    input: `table inet ${TABLE} {
  chain out {
    type filter hook output priority 0; policy drop;
    ip daddr 127.0.0.0/8 accept
    tcp dport 443 accept
    tcp sport 443 accept
    udp sport 20000-20999 accept
    udp dport 20000-20999 accept
  }
}
`,
  });
}

function openAll() {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' });
  } catch {
    // not there
  }
}

/** A self-signed certificate for MEDIA_IP (a test can't get a public CA's). */
function certificate() {
  const dir = mkdtempSync(join(tmpdir(), 'webcall-turn-tls-'));
  const cert = join(dir, 'fullchain.pem');
  const key = join(dir, 'privkey.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${MEDIA_IP}`,
    '-addext', `subjectAltName=IP:${MEDIA_IP}`,
  ], { stdio: 'ignore' });
  return { cert, key };
}

/** Whether something accepts TCP on `host`:`port` within `ms`. */
async function listening(host, port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise((done) => {
      const c = connect({ host, port }, () => { c.destroy(); done(true); });
      c.on('error', () => done(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

let server;
let coturn;
/** @type {import('playwright-core').Browser[]} */
const chromiums = [];

before(async () => {
  openAll();
  const { cert, key } = certificate();
  coturn = spawn('turnserver', [
    '-c', CONFIG, `--listening-ip=${MEDIA_IP}`, '--listening-port=3478', '--tls-listening-port=443',
    `--cert=${cert}`, `--pkey=${key}`, `--relay-ip=${MEDIA_IP}`, '--min-port=20000', '--max-port=20999',
    `--static-auth-secret=${SECRET}`, `--allowed-peer-ip=${MEDIA_IP}`,
  ], { stdio: ['ignore', process.env.WEBCALL_COTURN_LOG ? 'inherit' : 'ignore', 'inherit'] });
  await new Promise((ok, fail) => {
    coturn.on('spawn', ok);
    coturn.on('error', (err) => fail(new Error(`coturn's turnserver did not start (apt-get install coturn): ${err.message}`)));
  });
  assert.ok(await listening(MEDIA_IP, 443, 5000), 'coturn listens for TLS on 443');
  server = await startServer({
    env: {
      SFU_BIND: MEDIA_IP,
      SFU_PUBLIC_IP: MEDIA_IP,
      // Written in the wrong order on purpose: the server hands them out UDP, TCP, TLS.
      TURN_URLS: `turns:${MEDIA_IP}:443?transport=tcp,turn:${MEDIA_IP}:3478?transport=udp`,
      TURN_SHARED_SECRET: SECRET,
    },
  });
  // The test's certificate is self-signed: Chromium is told to trust it, as a public CA's
  // certificate would be trusted for a real TURN host name.
  for (const i of [1, 2]) chromiums.push(await launchChromium(toneWav(i), ['--ignore-certificate-errors']));
});

after(async () => {
  openAll();
  await Promise.all(chromiums.map((b) => b.close()));
  server?.stop();
  coturn?.kill('SIGTERM');
});

test(`with only TCP 443 open, two Chromium pages call through TURN over TLS and hold ${SECONDS} s`, { timeout: (SECONDS + 120) * 1000 }, async () => {
  only443();
  try {
    const { room, tokens } = await roomWith(server, ['chris', 'cleo'], 'Only HTTPS here');
    const started = Date.now();
    const pages = [
      await openCall(chromiums[0], server.base, room.id, tokens[0]),
      await openCall(chromiums[1], server.base, room.id, tokens[1]),
    ];
    await waitFor(pages, 'the pages did not hear each other through TURN/TLS', everyoneHearsEveryone, 60_000);
    console.log(`only 443: both heard each other ${Date.now() - started} ms after joining`);
    const paths = await Promise.all(pages.map(selectedLocalCandidate));
    console.log(`only 443: selected paths ${JSON.stringify(paths)}`);
    for (const path of paths) assert.equal(path?.candidateType, 'relay', `through TURN: ${JSON.stringify(paths)}`);
    const m = await server.metrics();
    assert.equal(m.get('sfu_peers{transport="relay"}') ?? 0, 2, 'the server counts both peers as relayed');
    await holdCall(server, pages, SECONDS, 'only 443');
  } finally {
    openAll();
  }
});
