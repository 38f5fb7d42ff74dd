// Starts the real `webcall` binary on 127.0.0.1 with a fresh data directory, and talks to
// its HTTP API like a client would.

import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '..', '..');
export const REGISTRATION_SECRET = 'browser-test-secret';
export const PASSWORD = 'correct horse battery';

/**
 * @typedef {{
 *   base: string,
 *   dataDir: string,
 *   stop: () => void,
 *   kill: (signal?: NodeJS.Signals) => Promise<void>,
 *   child: import('node:child_process').ChildProcess,
 *   exited: Promise<number | null>,
 *   node: number | undefined,
 *   nodeName: string | undefined,
 *   api: (path: string, opts?: {method?: string, token?: string, body?: unknown}) => Promise<any>,
 *   metrics: () => Promise<Map<string, number>>,
 * }} Server
 */

/**
 * Starts one `webcall serve`. With DATABASE_URL and REDIS_URL in `env` it joins a cluster:
 * `node` is then its tag (`node-{tag:05x}` in its logs and on /metrics).
 * @param {{env?: Record<string, string>, logTo?: string}} [opts] extra environment for the
 *   server; `logTo`: a file every line of its stderr is appended to
 * @returns {Promise<Server>}
 */
export async function startServer({ env = {}, logTo } = {}) {
  const binary = process.env.WEBCALL_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'webcall');
  const dataDir = mkdtempSync(join(tmpdir(), 'webcall-browser-'));
  const child = spawn(binary, ['serve'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      PORT: '0',
      BIND: '127.0.0.1',
      DATA_DIR: dataDir,
      STATIC_DIR: join(root, 'static'),
      REGISTRATION_SECRET,
      BCRYPT_COST: '4',
      RATE_LIMIT_REGISTER: '1000',
      RATE_LIMIT_LOGIN: '1000',
      RATE_LIMIT_LOGIN_ACCOUNT: '1000',
      RATE_LIMIT_ROOM_CREATE: '1000',
      RUST_LOG: process.env.RUST_LOG ?? 'info',
      ...env,
    },
    // Logs are JSON lines on stderr (stdout is for a command's result).
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  /** @type {string | undefined} */
  let nodeName;
  const base = await new Promise((resolveBase, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start in 30 s')), 30_000);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (logTo) appendFileSync(logTo, `${line}\n`);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        // not a JSON log line (the registration secret's banner): shown as before
        console.error(line);
        return;
      }
      if (process.env.WEBCALL_LOG) console.error(line);
      if (typeof entry.node === 'string' && entry.message?.startsWith('cluster: this node is in the registry')) {
        nodeName = entry.node;
      }
      if (entry.addr && entry.message?.startsWith('webcall listening')) {
        clearTimeout(timer);
        resolveBase(`http://${entry.addr}`);
      }
    });
  });
  const api = async (path, { method = 'GET', token, body } = {}) => {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  // `/metrics` as name{labels} -> value.
  const metrics = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const out = new Map();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const at = line.lastIndexOf(' ');
      out.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return out;
  };
  const stop = () => {
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  };
  /**
   * Sends `signal` and waits for the process to end.
   * @param {NodeJS.Signals} [signal]
   */
  const kill = async (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  // The cluster logs its tag before it listens; /metrics has it too, should the order change.
  if (!nodeName && env.REDIS_URL) {
    for (const key of (await metrics()).keys()) {
      const m = /^webcall_node_info\{.*node="(node-[0-9a-f]{5})"/.exec(key);
      if (m) nodeName = m[1];
    }
  }
  const node = nodeName ? parseInt(nodeName.slice('node-'.length), 16) : undefined;
  return { base, dataDir, stop, kill, child, exited, node, nodeName, api, metrics };
}
