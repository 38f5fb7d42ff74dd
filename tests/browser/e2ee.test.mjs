// End-to-end encrypted DMs against a malicious server (docs/e2ee.md, "Keys the browser
// remembers"; docs/security.md, "The browser and E2EE keys"). The test plays the server: it
// writes keys into the server's SQLite database under the browsers (a swapped current key, or
// none at all), and forges a message with a key of its own. Each time the browser must warn
// and, when sending, send nothing until the user accepts:
// - a swapped key of the recipient: asked before encrypting, both fingerprints shown;
// - a message that comes with a sender key never seen before: marked, and the conversation
//   says so;
// - the server lists no key for a peer whose key is known: nothing goes out in plain text.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import { axe, registerUser, sessionFor } from './harness.mjs';
import { startServer } from './server.mjs';

const { subtle } = webcrypto;

/** @type {import('./server.mjs').Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** Problems seen on any page: console errors, uncaught exceptions, CSP violations. */
let problems = [];
/** @type {import('playwright-core').BrowserContext[]} each test's users, closed after it */
let contexts = [];

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.stop();
});

afterEach(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  contexts = [];
  const seen = problems;
  problems = [];
  assert.deepEqual(seen, []);
});

// Python's sqlite3 (CI has python3; the server's SQLite is in WAL mode and waits on a lock).
const SQL = `import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
rows = db.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()
db.commit()
print(json.dumps(rows))`;

/**
 * Runs one statement on the server's database, as a malicious operator would.
 * @param {string} statement
 * @param {unknown[]} [params]
 * @returns {unknown[][]}
 */
function sql(statement, params = []) {
  const out = execFileSync('python3', ['-c', SQL, join(server.dataDir, 'webcall.db'), statement, JSON.stringify(params)], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** The canonical JWK text the server stores. */
function canonical(jwk) {
  return JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
}

/** The app's fingerprint (static/js/e2ee.js): SHA-256 of the canonical JWK, 16 bytes in hex groups. */
async function fingerprint(jwk) {
  const digest = new Uint8Array(await subtle.digest('SHA-256', new TextEncoder().encode(canonical(jwk))));
  return [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('').match(/.{4}/g).join(' ');
}

/** A P-256 key pair of the "server": its public JWK and private key. */
async function evilKey() {
  const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const full = await subtle.exportKey('jwk', pair.publicKey);
  return { jwk: { kty: 'EC', crv: 'P-256', x: full.x, y: full.y }, privateKey: pair.privateKey };
}

/** Makes `jwk` the current key of `username`: a newer row in user_keys is the current key. */
function swapKey(username, keyId, jwk) {
  sql('INSERT INTO user_keys (user_id, key_id, jwk, created_at) SELECT id, ?, ?, ? FROM users WHERE username_key = ?',
    [keyId, canonical(jwk), Date.now(), username.toLowerCase()]);
}

/** The DM key between a private key and a public JWK (docs/e2ee.md). */
async function dmKey(privateKey, jwk) {
  const pub = await subtle.importKey('jwk', { ...jwk, ext: true }, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  const bits = await subtle.deriveBits({ name: 'ECDH', public: pub }, privateKey, 256);
  const hkdf = await subtle.importKey('raw', bits, 'HKDF', false, ['deriveKey']);
  return subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: new TextEncoder().encode('webcall/dm/v1') },
    hkdf, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

/** A signed-in page of `token`'s user (a context of its own: its own storage). */
async function signedIn(name, token) {
  const context = await browser.newContext({ locale: 'en-US' });
  contexts.push(context);
  await context.addInitScript((session) => {
    if (!sessionStorage.getItem('webcall.session')) sessionStorage.setItem('webcall.session', JSON.stringify(session));
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  }, sessionFor(token));
  const page = await context.newPage();
  // API refusals (4xx) show as "Failed to load resource": the API answering, not the app failing.
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url ?? '';
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text()) && url.includes('/api/')) return;
    problems.push(`${name}: console error: ${msg.text()} (${url})`);
  });
  page.on('pageerror', (err) => problems.push(`${name}: uncaught: ${err.message}`));
  await page.goto(`${server.base}/`);
  await page.getByRole('heading', { name: 'Your rooms' }).waitFor();
  return page;
}

/** Goes to an in-app path without reloading. */
async function go(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

/** The current key of `username` as the server lists it, once their browser has published one. */
async function currentKey(username, token) {
  for (let i = 0; i < 100; i++) {
    const keys = await server.api(`/api/v1/keys/${username}`, { token });
    if (keys.current) return keys.current;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${username} published no key`);
}

/** The DMs between the two users, as the server holds them (oldest first). */
async function stored(token, peer) {
  return (await server.api(`/api/v1/dm/${peer}`, { token })).reverse();
}

/**
 * Two users who have written to each other once, encrypted: each browser has met (and so
 * remembers) the other's key.
 */
async function pair(a, b) {
  const tokens = { a: await registerUser(server, a), b: await registerUser(server, b) };
  const pa = await signedIn(a, tokens.a);
  const pb = await signedIn(b, tokens.b);
  const keys = { a: await currentKey(a, tokens.a), b: await currentKey(b, tokens.b) };
  await go(pa, `/dm/${b}`);
  await pa.getByText('End-to-end encrypted').waitFor();
  await pa.getByRole('textbox', { name: 'Message' }).fill('hello');
  await pa.getByRole('textbox', { name: 'Message' }).press('Enter');
  await pa.locator('.dm-list .msg', { hasText: 'hello' }).waitFor();
  await go(pb, `/dm/${a}`);
  await pb.locator('.dm-list .msg', { hasText: 'hello' }).locator('.lock').waitFor();
  await pb.getByText('End-to-end encrypted').waitFor();
  return { pa, pb, tokens, keys };
}

test('a recipient key the server swaps in is not encrypted to until the user accepts it; both fingerprints are shown', { timeout: 60_000 }, async () => {
  const { pa, tokens, keys } = await pair('alice1', 'bob1');
  const evil = await evilKey();
  swapKey('bob1', 'evil-b', evil.jwk);

  const box = pa.getByRole('textbox', { name: 'Message' });
  await box.fill('Meet at noon');
  await box.press('Enter');
  // Asked, not sent: the key bob1's browser published and the server's new one, side by side.
  const prompt = pa.locator('.key-prompt');
  await prompt.getByText('Not sent yet: the key of bob1 changed.').waitFor({ timeout: 10_000 });
  assert.equal(await prompt.locator('.fp-before').textContent(), await fingerprint(keys.b.jwk));
  assert.equal(await prompt.locator('.fp-now').textContent(), await fingerprint(evil.jwk));
  assert.deepEqual((await stored(tokens.a, 'bob1')).map((m) => m.recipient_key_id), [keys.b.key_id]);
  await axe(pa, 'dm: asked about a changed key');

  // "Don't send": still nothing sent, the text kept; sending again asks again.
  await prompt.getByRole('button', { name: 'Don’t send' }).click();
  await prompt.waitFor({ state: 'hidden' });
  assert.equal(await box.inputValue(), 'Meet at noon');
  await box.press('Enter');
  await prompt.getByRole('button', { name: 'Trust the new key and send' }).waitFor({ timeout: 10_000 });
  assert.equal((await stored(tokens.a, 'bob1')).length, 1);

  // Accepted: sent to the new key, which here is the server's, so the server reads it; the
  // question was all that stood in between. The next message goes without asking.
  await prompt.getByRole('button', { name: 'Trust the new key and send' }).click();
  await pa.locator('.dm-list .msg', { hasText: 'Meet at noon' }).waitFor();
  const row = (await stored(tokens.a, 'bob1')).at(-1);
  assert.equal(row.recipient_key_id, 'evil-b');
  const key = await dmKey(evil.privateKey, keys.a.jwk);
  const aad = new TextEncoder().encode(`alice1|bob1|${row.sender_key_id}|evil-b`);
  const plain = await subtle.decrypt({ name: 'AES-GCM', iv: Buffer.from(row.iv, 'base64'), additionalData: aad }, key, Buffer.from(row.ciphertext, 'base64'));
  assert.equal(new TextDecoder().decode(plain), 'Meet at noon');
  await box.fill('And bring the slides');
  await box.press('Enter');
  await pa.locator('.dm-list .msg', { hasText: 'And bring the slides' }).waitFor();
  assert.equal(await prompt.isVisible(), false);
});

test('a message that comes with a sender key never seen before is marked, and the conversation says so', { timeout: 60_000 }, async () => {
  const { pa, pb, tokens, keys } = await pair('alice2', 'bob2');
  // The server lists a key of its own as alice2's and writes to bob2 as alice2 with it.
  const evil = await evilKey();
  swapKey('alice2', 'evil-a', evil.jwk);
  const key = await dmKey(evil.privateKey, keys.b.jwk);
  const iv = webcrypto.getRandomValues(new Uint8Array(12));
  const aad = new TextEncoder().encode(`alice2|bob2|evil-a|${keys.b.key_id}`);
  const ct = await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, new TextEncoder().encode('Send me the code'));
  await server.api('/api/v1/dm/bob2', {
    method: 'POST', token: tokens.a,
    body: { ciphertext: Buffer.from(ct).toString('base64'), iv: Buffer.from(iv).toString('base64'), sender_key_id: 'evil-a', recipient_key_id: keys.b.key_id },
  });

  // It decrypts (the key is on the server's list) but is marked, not locked, and the
  // conversation names the key; the earlier message keeps its lock.
  const forged = pb.locator('.dm-list .msg', { hasText: 'Send me the code' });
  await forged.locator('.new-key').waitFor({ timeout: 10_000 });
  assert.equal(await forged.locator('.lock').count(), 0);
  const notice = pb.locator('.key-notice');
  await notice.getByText('came with a key of alice2 you have not seen before').waitFor();
  assert.equal(await notice.locator('code').textContent(), await fingerprint(evil.jwk));
  const hello = pb.locator('.dm-list .msg', { hasText: 'hello' });
  assert.equal(await hello.locator('.lock').count(), 1);
  assert.equal(await hello.locator('.new-key').count(), 0);
  await axe(pb, 'dm: a message with a new key');

  // Opened again, the mark stays (viewing accepts nothing), and the changed current key is
  // put to the user with both fingerprints.
  await go(pb, '/dm');
  await go(pb, '/dm/alice2');
  await pb.locator('.dm-list .msg', { hasText: 'Send me the code' }).locator('.new-key').waitFor();
  const prompt = pb.locator('.key-prompt');
  await prompt.getByText('The key of alice2 changed').waitFor();
  assert.equal(await prompt.locator('.fp-before').textContent(), await fingerprint(keys.a.jwk));
  assert.equal(await prompt.locator('.fp-now').textContent(), await fingerprint(evil.jwk));
});

test('when the server lists no key for a peer whose key is known, nothing is sent in plain text', { timeout: 60_000 }, async () => {
  const { pa, tokens } = await pair('alice3', 'bob3');
  sql('DELETE FROM user_keys WHERE user_id = (SELECT id FROM users WHERE username_key = ?)', ['bob3']);
  assert.equal((await server.api('/api/v1/keys/bob3', { token: tokens.a })).current, null);

  await pa.getByRole('textbox', { name: 'Message' }).fill('Plain text? Never.');
  await pa.getByRole('textbox', { name: 'Message' }).press('Enter');
  await pa.getByText('Not sent: the server gives no key for bob3, though you had one.').waitFor({ timeout: 10_000 });
  await pa.getByText('The server says bob3 has no encryption key, but you had one.').waitFor();
  const rows = await stored(tokens.a, 'bob3');
  assert.equal(rows.length, 1);
  assert.ok(rows.every((m) => m.text === undefined || m.text === null), JSON.stringify(rows));
  assert.equal(await pa.getByRole('textbox', { name: 'Message' }).inputValue(), 'Plain text? Never.');
});
