// Three `webcall serve` nodes share one PostgreSQL and one Redis. Each page reaches the app
// through a failover TCP proxy of its own (page i prefers node i, then i+1, then i+2), as a
// reverse proxy in front of real nodes would. One room, three users, one call across the
// three nodes: everyone hears everyone and chat crosses nodes. Then the node that owns the
// room's media is killed (SIGKILL), three times over: the pages must notice, rejoin by
// themselves on a live node, hear each other again within 45 s, and leave no ghost behind.
//
// Needs PostgreSQL and Redis (WEBCALL_CI_POSTGRES_URL, WEBCALL_CI_REDIS_URL; the compose
// defaults otherwise); skipped when either can't be reached (failed instead with
// WEBCALL_TEST_REQUIRE_ALL=1, as in CI). Each node's log goes to a folder
// printed at the start (RUST_LOG defaults to info,api=debug,signaling=debug here), and a
// failure also leaves the room's Redis keys there.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import {
  everyoneHearsEveryone, hearing as whoHears, holdCall, launchChromium, openCall, roomWith, sample,
  needs, sleep, toneWav, waitFor,
} from './harness.mjs';
import { startServer } from './server.mjs';

const POSTGRES_URL = process.env.WEBCALL_CI_POSTGRES_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.WEBCALL_CI_REDIS_URL ?? 'redis://127.0.0.1:6379';
const suffix = randomBytes(4).toString('hex');
const DATABASE = `webcall_browser_${suffix}`;
const PREFIX = `webcall_browser_${suffix}`;
const NODES = 3;
/** The longest a call may take to come back after its owner node dies. */
const RECOVERY_MS = 45_000;
/** How long the dead node's participants may stay in presence (node expiry on the bus: 15 s). */
const PRESENCE_MS = 25_000;
// The holds of this file (CI shortens them: one full minute-long hold is the soak's first
// call; package.json `test:ci`): the call across the three nodes, then after each failover.
const HOLD_SECONDS = Number(process.env.WEBCALL_CLUSTER_HOLD_SECONDS ?? 60);
const FAILOVER_HOLD_SECONDS = Number(process.env.WEBCALL_CLUSTER_FAILOVER_HOLD_SECONDS ?? 30);
const ROUNDS = 3;

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['pipe', 'pipe', 'pipe'], ...opts });
const psql = (sql, opts = {}) => run('psql', [POSTGRES_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], opts);
const redis = (...args) => run('redis-cli', ['-u', REDIS_URL, ...args]).trim();

/** Why the test can't run here, or false. */
const unavailable = (() => {
  try {
    psql('SELECT 1');
  } catch (err) {
    return `PostgreSQL at ${POSTGRES_URL} can't be reached with psql (set WEBCALL_CI_POSTGRES_URL): ${String(err.stderr || err.message).trim()}`;
  }
  try {
    const pong = redis('PING');
    if (pong !== 'PONG') return `Redis at ${REDIS_URL} answered ${pong} to PING`;
  } catch (err) {
    return `Redis at ${REDIS_URL} can't be reached with redis-cli (set WEBCALL_CI_REDIS_URL): ${String(err.stderr || err.message).trim()}`;
  }
  return false;
})();

const LOGS = mkdtempSync(join(tmpdir(), 'webcall-cluster-'));
let started = 0;

/** @typedef {{server: import('./server.mjs').Server, alive: boolean, log: string}} Node */
/** @type {Node[]} */
const nodes = [];
/** @type {ReturnType<typeof failoverProxy>[]} */
const proxies = [];
/** @type {import('playwright-core').Browser[]} */
const browsers = [];
const ctx = /** @type {{room?: any, tokens?: string[], pages?: import('playwright-core').Page[]}} */ ({});
const names = ['una', 'vic', 'wes'];
/**
 * What each page's room sockets carried that matters for recovery (not candidates or
 * pings), for the failure messages.
 * @type {{at: number, dir: string, type: string, detail?: string}[][]}
 */
const frames = [[], [], []];

/** Notes page `i`'s room-socket traffic in `frames[i]`. */
function recordFrames(page, i) {
  page.on('websocket', (ws) => {
    if (!/\/api\/v1\/rooms\/[^/]+\/ws\?/.test(ws.url())) return;
    const note = (dir, type, detail) => {
      frames[i].push({ at: Date.now(), dir, type, ...(detail ? { detail } : {}) });
      if (frames[i].length > 60) frames[i].shift();
    };
    note('open', 'socket');
    ws.on('close', () => note('close', 'socket'));
    const on = (dir) => ({ payload }) => {
      let msg;
      try {
        msg = JSON.parse(String(payload));
      } catch {
        return;
      }
      if (['ice_candidate', 'ping', 'pong', 'presence', 'chat', 'speaking', 'level'].includes(msg.type)) return;
      note(dir, msg.type, msg.code || msg.reason || msg.message ? `${msg.code ?? ''} ${msg.reason ?? ''} ${msg.message ?? ''}`.trim() : undefined);
    };
    ws.on('framereceived', on('in'));
    ws.on('framesent', on('out'));
  });
}

/** Each page's call states and socket traffic since `since`, for a failure message. */
async function history(pages, since) {
  const logs = await Promise.all(pages.map((p) => p.evaluate(() => /** @type {any} */ (window).webcall?.stateLog ?? []).catch((e) => [String(e)])));
  return pages.map((_, i) => ({
    page: i,
    states: logs[i].filter((e) => typeof e !== 'object' || e.at >= since).map((e) => (typeof e === 'object' ? { ...e, at: e.at - since } : e)),
    frames: frames[i].filter((f) => f.at >= since).map((f) => ({ ...f, at: f.at - since })),
  }));
}
let dbCreated = false;

function databaseUrl() {
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${DATABASE}`;
  return url.toString();
}

/** Starts (or restarts) node `i` with the cluster's shared settings. */
async function startNode(i) {
  const log = join(LOGS, `node${i}-${++started}.log`);
  const server = await startServer({
    logTo: log,
    env: {
      DATABASE_URL: databaseUrl(),
      REDIS_URL,
      REDIS_PREFIX: PREFIX,
      JWT_SECRET: 'cluster-browser-test-jwt-secret-0123456789',
      SFU_DISCONNECT_GRACE_SECS: '20',
      RUST_LOG: process.env.RUST_LOG ?? 'info,api=debug,signaling=debug',
    },
  });
  assert.ok(server.node !== undefined, `node ${i} logged its tag (see ${log})`);
  nodes[i] = { server, alive: true, log };
  console.log(`node ${i}: ${server.nodeName} (${server.node}) at ${server.base}, log ${log}`);
}

const liveNodes = () => nodes.filter((n) => n.alive);

/** /metrics of every live node, summed by series: the cluster seen as one server. */
const cluster = {
  async metrics() {
    const sum = new Map();
    for (const n of liveNodes()) {
      for (const [k, v] of await n.server.metrics()) sum.set(k, (sum.get(k) ?? 0) + v);
    }
    return sum;
  },
};

/**
 * A TCP proxy on 127.0.0.1:0 that sends each connection to the first of `order()`'s nodes
 * that accepts it (a refused connection tries the next). It notes which node each open room
 * WebSocket went to.
 * @param {() => number[]} order node indices, best first
 */
function failoverProxy(order) {
  /** @type {Set<{node: number, ws: boolean}>} */
  const open = new Set();
  const sockets = new Set();
  const server = net.createServer((client) => {
    client.pause();
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const candidates = order().filter((i) => nodes[i]);
    const tryNext = () => {
      const i = candidates.shift();
      if (i === undefined || client.destroyed) {
        client.destroy();
        return;
      }
      const { port } = new URL(nodes[i].server.base);
      const upstream = net.connect(Number(port), '127.0.0.1');
      const refused = () => {
        upstream.destroy();
        tryNext();
      };
      upstream.once('error', refused);
      upstream.once('connect', () => {
        upstream.off('error', refused);
        const conn = { node: i, ws: false };
        open.add(conn);
        sockets.add(upstream);
        upstream.on('error', () => client.destroy());
        upstream.on('close', () => {
          open.delete(conn);
          sockets.delete(upstream);
          client.destroy();
        });
        client.on('close', () => upstream.destroy());
        client.once('data', (chunk) => {
          const head = chunk.toString('latin1', 0, Math.min(chunk.length, 2048));
          conn.ws = /^GET \/api\/v1\/rooms\/[^/ ]+\/ws\?/.test(head) && /\r\nupgrade: *websocket/i.test(head);
        });
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryNext();
  });
  const listening = new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  return {
    listening,
    get base() {
      const addr = /** @type {net.AddressInfo} */ (server.address());
      return `http://127.0.0.1:${addr.port}`;
    },
    /** The nodes this proxy's open room WebSockets are on. */
    wsNodes: () => [...open].filter((c) => c.ws).map((c) => c.node),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

const ownerKey = (roomId) => `${PREFIX}:room:${roomId}:media`;

/** The node index that owns the room's media per Redis, or -1 with the raw value. */
function owner(roomId) {
  const raw = redis('GET', ownerKey(roomId));
  const tag = Number(raw);
  return { raw, index: raw === '' ? -1 : nodes.findIndex((n) => n.alive && n.server.node === tag) };
}

/** Saves every Redis key under the prefix (type, TTL, value) next to the node logs. */
function dumpRedis(label) {
  const out = [];
  try {
    for (const key of redis('--scan', '--pattern', `${PREFIX}*`).split('\n').filter(Boolean).sort()) {
      const type = redis('TYPE', key);
      const ttl = redis('PTTL', key);
      const value = {
        string: () => redis('GET', key),
        hash: () => redis('HGETALL', key),
        set: () => redis('SMEMBERS', key),
        zset: () => redis('ZRANGE', key, '0', '-1', 'WITHSCORES'),
        list: () => redis('LRANGE', key, '0', '-1'),
        stream: () => `${redis('XLEN', key)} entries`,
      }[type]?.() ?? '';
      out.push(`${key} (${type}, pttl ${ttl}): ${value.replace(/\n/g, ' | ')}`);
    }
  } catch (err) {
    out.push(`redis dump failed: ${err}`);
  }
  const file = join(LOGS, `redis-${label}.txt`);
  writeFileSync(file, `${out.join('\n')}\n`);
  console.log(`redis keys under ${PREFIX} (${label}): ${file}`);
}

/** Runs `fn`; on failure leaves the Redis keys next to the logs first. */
async function withEvidence(label, fn) {
  try {
    return await fn();
  } catch (err) {
    dumpRedis(label);
    console.log(`node logs: ${LOGS}`);
    throw err;
  }
}

/** Each user once in the call, as a live node's presence API tells it; undefined when so. */
async function ghosts(roomId, token) {
  const via = liveNodes()[0].server;
  const presence = await via.api(`/api/v1/rooms/${roomId}/presence`, { token });
  const members = presence.members ?? presence;
  for (const name of names) {
    const m = members.find((x) => x.username === name);
    if (!m?.in_call || m.participants !== 1) return `${name}: ${JSON.stringify(members)}`;
  }
  return undefined;
}

/**
 * Which other pages each page hears now (harness.mjs hearing: the other page's tone on its
 * current participant's stream, with energy growing since `prev`), both pages connected; and
 * what is heard that should not be.
 */
function hearing(prev, cur) {
  const { heard, wrong } = whoHears(prev, cur);
  const connected = cur.map((s) => s.state === 'connected');
  return {
    heard: heard.map((set, i) => new Set([...set].filter((j) => connected[i] && connected[j]))),
    wrong,
  };
}

/** Every page in `group` hears every other page in `group`. */
const allHear = (heard, group) => group.every((i) => group.every((j) => j === i || heard[i].has(j)));

before(async () => {
  if (unavailable) return;
  console.log(`cluster logs: ${LOGS} (database ${DATABASE}, redis prefix ${PREFIX})`);
  psql(`CREATE DATABASE ${DATABASE}`);
  dbCreated = true;
  // One at a time: the first migrates the fresh database.
  for (let i = 0; i < NODES; i++) await startNode(i);
  for (let i = 0; i < NODES; i++) {
    const proxy = failoverProxy(() => [0, 1, 2].map((d) => (i + d) % NODES));
    await proxy.listening;
    proxies.push(proxy);
  }
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close().catch(() => {})));
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(nodes.filter(Boolean).map(async (n) => {
    if (!n.alive) return;
    const forced = setTimeout(() => n.server.child.kill('SIGKILL'), 10_000);
    await n.server.kill('SIGTERM');
    clearTimeout(forced);
  }));
  if (unavailable) return;
  try {
    const keys = redis('--scan', '--pattern', `${PREFIX}*`).split('\n').filter(Boolean);
    for (let k = 0; k < keys.length; k += 200) redis('DEL', ...keys.slice(k, k + 200));
  } catch (err) {
    console.error(`could not delete the Redis keys under ${PREFIX}: ${err}`);
  }
  // A busy PostgreSQL (other tests creating and dropping databases) can take more than 10 s.
  if (dbCreated) psql(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`, { timeout: 60_000 });
});

test('a room entered through three nodes is one call', { timeout: 240_000, ...needs(unavailable) }, () => withEvidence('one-call', async () => {
  const { room, tokens } = await roomWith(nodes[0].server, names, 'Cluster');
  ctx.room = room;
  ctx.tokens = tokens;
  for (let i = 0; i < NODES; i++) browsers.push(await launchChromium(toneWav(i)));
  const pages = [];
  for (let i = 0; i < NODES; i++) {
    pages.push(await openCall(browsers[i], proxies[i].base, room.id, tokens[i], { beforeGoto: async (page) => recordFrames(page, i) }));
    // Gone if the page ever reloads: the test never reloads, so the app must heal in place.
    await pages[i].evaluate(() => { /** @type {any} */ (window).clusterTestMark = true; });
  }
  await waitFor(pages, 'not everyone heard everyone across the nodes', everyoneHearsEveryone, 45_000);
  ctx.pages = pages;
  proxies.forEach((p, i) => assert.deepEqual(p.wsNodes(), [i], `page ${i}'s socket is on node ${i}`));
  const { raw, index } = owner(room.id);
  assert.ok(index >= 0, `the room's owner in Redis (${ownerKey(room.id)} = ${JSON.stringify(raw)}) is one of ${nodes.map((n) => n.server.node)}`);
  console.log(`room ${room.id}: media on node ${index} (${nodes[index].server.nodeName})`);

  await holdCall(cluster, pages, HOLD_SECONDS, 'three nodes');

  // Chat sent through node 0 shows on the pages whose sockets are on nodes 1 and 2.
  const text = `Hello from node 0 (${suffix})`;
  await pages[0].getByRole('tab', { name: /^Chat/ }).click();
  await pages[0].getByRole('textbox', { name: 'Message' }).fill(text);
  await pages[0].getByRole('textbox', { name: 'Message' }).press('Enter');
  for (const page of pages.slice(1)) {
    await page.getByRole('tab', { name: /^Chat/ }).click();
    await page.locator('.chat-list .msg', { hasText: text }).waitFor({ timeout: 10_000 });
  }
  await sleep(500);
  for (const page of pages) assert.equal(await page.locator('.chat-list .msg', { hasText: text }).count(), 1, 'the message shows once');
  assert.equal(owner(room.id).index, index, 'the room stayed on its node');
}));

test('the owner node dies and the call comes back by itself', { timeout: 420_000, ...needs(unavailable) }, () => withEvidence('failover', async () => {
  const { room, tokens, pages } = ctx;
  assert.ok(room && tokens && pages, 'the first test set up the call');
  /** @type {Record<string, any>[]} */
  const results = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const label = `round ${round}`;
    const { raw, index: killed } = owner(room.id);
    assert.ok(killed >= 0, `${label}: the room has a live owner (${JSON.stringify(raw)})`);
    const killedName = nodes[killed].server.nodeName;
    // Pages whose socket is on the doomed node: they lose it too and must fail over.
    const orphans = proxies.flatMap((p, i) => (p.wsNodes().includes(killed) ? [i] : []));
    const others = pages.map((_, i) => i).filter((i) => !orphans.includes(i));
    const all = pages.map((_, i) => i);
    const before = await sample(pages);

    const killedAt = Date.now();
    await nodes[killed].server.kill('SIGKILL');
    nodes[killed].alive = false;
    console.log(`${label}: killed node ${killed} (${killedName}), the owner; sockets on it: pages ${JSON.stringify(orphans)}`);

    // Sample until every page hears every other page again.
    /** @type {Record<string, number>} */
    const times = {};
    let prev = await sample(pages);
    let cur = prev;
    let heard = [];
    let wrong = [];
    for (;;) {
      await sleep(500);
      cur = await sample(pages);
      ({ heard, wrong } = hearing(prev, cur));
      const t = Date.now() - killedAt;
      // The first second still drains packets already on their way.
      if (t > 1000) {
        if (times.kill_to_survivors_heard_ms === undefined && others.length > 1 && allHear(heard, others)) times.kill_to_survivors_heard_ms = t;
        for (const i of orphans) {
          const back = all.every((j) => j === i || (heard[i].has(j) && heard[j].has(i)));
          if (times[`kill_to_page${i}_back_ms`] === undefined && back) times[`kill_to_page${i}_back_ms`] = t;
        }
        if (allHear(heard, all) && wrong.length === 0 && cur.every((s, i) => s.rejoins > before[i].rejoins)) {
          times.kill_to_all_heard_ms = t;
          break;
        }
      }
      if (t > RECOVERY_MS) {
        console.log(`${label}: times so far ${JSON.stringify(times)}; ms since the kill, per page: ${JSON.stringify(await history(pages, killedAt))}`);
        assert.fail(`${label}: the call did not come back within ${RECOVERY_MS} ms of killing node ${killed} (${killedName}); hearing ${JSON.stringify(heard.map((h) => [...h]))} (${[...wrong, ...whoHears(prev, cur).missing].join('; ')}), rejoins ${before.map((s) => s.rejoins)} -> ${cur.map((s) => s.rejoins)}, states ${cur.map((s) => s.state)}, wsNodes ${JSON.stringify(proxies.map((p) => p.wsNodes()))}; samples ${JSON.stringify(cur)}`);
      }
      prev = cur;
    }
    const logs = await Promise.all(pages.map((p) => p.evaluate(() => /** @type {any} */ (window).webcall.stateLog)));
    const noticed = logs.map((log) => log.find((e) => e.at >= killedAt && e.state !== 'connected'));
    times.kill_to_first_noticed_ms = Math.min(...noticed.map((e) => (e ? e.at - killedAt : Infinity)));
    // When the cluster told a page whose media was on the dead node (the registry's expiry).
    const told = logs.flatMap((log) => log.filter((e) => e.at >= killedAt && String(e.detail).startsWith('media closed')).map((e) => e.at - killedAt));
    if (told.length > 0) times.kill_to_media_closed_ms = Math.min(...told);
    assert.ok(cur.every((s, i) => s.rejoins > before[i].rejoins), `${label}: every page rejoined by itself`);
    for (const [i, page] of pages.entries()) {
      assert.equal(await page.evaluate(() => /** @type {any} */ (window).clusterTestMark), true, `${label}: page ${i} was not reloaded`);
    }
    const after = owner(room.id);
    assert.ok(after.index >= 0 && after.index !== killed, `${label}: the owner in Redis (${JSON.stringify(after.raw)}) is a live node: ${liveNodes().map((n) => n.server.node)}`);
    const sockets = proxies.map((p) => p.wsNodes());
    for (const [i, on] of sockets.entries()) {
      assert.equal(on.length, 1, `${label}: page ${i} has one socket open: ${JSON.stringify(sockets)}`);
      assert.ok(nodes[on[0]].alive, `${label}: page ${i}'s socket is on a live node: ${JSON.stringify(sockets)}`);
    }

    // The dead node's participants leave presence once the bus expires it.
    let ghost = await ghosts(room.id, tokens[0]);
    while (ghost && Date.now() - killedAt < PRESENCE_MS) {
      await sleep(500);
      ghost = await ghosts(room.id, tokens[0]);
    }
    assert.equal(ghost, undefined, `${label}: each user once in presence ${PRESENCE_MS} ms after the kill`);
    times.kill_to_presence_clean_ms = Date.now() - killedAt;
    const ownerMetrics = await nodes[after.index].server.metrics();
    assert.equal(ownerMetrics.get('sfu_participants'), names.length, `${label}: one media peer per user on the new owner`);
    assert.equal((await cluster.metrics()).get('sfu_participants'), names.length, `${label}: and none elsewhere`);

    const result = {
      round, killed: killedName, new_owner: nodes[after.index].server.nodeName, orphan_pages: orphans,
      sockets_after: sockets.map((on) => nodes[on[0]].server.nodeName), ...times,
    };
    console.log(`RESULT cluster-failover ${JSON.stringify(result)}`);
    results.push(result);

    await holdCall(cluster, pages, FAILOVER_HOLD_SECONDS, `${label}, after the failover`);
    if (round < ROUNDS) await startNode(killed);
  }
  const worst = Math.max(...results.map((r) => r.kill_to_all_heard_ms));
  console.log(`RESULT cluster-failover-summary ${JSON.stringify({ rounds: results.length, worst_kill_to_all_heard_ms: worst, kill_to_all_heard_ms: results.map((r) => r.kill_to_all_heard_ms) })}`);
}));
