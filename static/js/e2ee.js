// @ts-check
// End-to-end encryption of DMs (docs/e2ee.md): ECDH P-256 -> HKDF-SHA-256 -> AES-256-GCM with
// WebCrypto. The private key is generated non-extractable and kept in IndexedDB; the public
// key is published on first use. No DOM.

const DB_NAME = 'webcall-e2ee';
const STORE = 'keys';
const INFO = new TextEncoder().encode('webcall/dm/v1');
const SALT = new Uint8Array(32);

/**
 * @typedef {{id: string, username: string, keyId: string, privateKey: CryptoKey, jwk: import('./api.js').PublicJwk, created: number}} LocalKey
 * @typedef {{ciphertext: string, iv: string, sender_key_id: string, recipient_key_id: string}} Sealed
 */

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const store = req.result.createObjectStore(STORE, { keyPath: 'id' });
      store.createIndex('username', 'username');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** @param {string} username @returns {Promise<LocalKey[]>} this browser's keys of the user, newest first */
async function localKeys(username) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const req = db.transaction(STORE).objectStore(STORE).index('username').getAll(username.toLowerCase());
      req.onsuccess = () => resolve(/** @type {LocalKey[]} */ (req.result).sort((a, b) => b.created - a.created));
      req.onerror = () => reject(req.error);
    });
  } finally {
    db.close();
  }
}

/** @param {LocalKey} key */
async function saveKey(key) {
  const db = await openDb();
  try {
    await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).put(key);
      tx.oncomplete = () => resolve(undefined);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** @param {ArrayBuffer | Uint8Array} buf */
function b64(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** @param {string} text base64 or base64url */
function unb64(text) {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '='));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** @param {import('./api.js').PublicJwk} jwk */
function importPublic(jwk) {
  return crypto.subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, ext: true },
    { name: 'ECDH', namedCurve: 'P-256' }, false, []);
}

/**
 * A hex SHA-256 of the canonical public JWK, grouped for reading aloud.
 * @param {import('./api.js').PublicJwk} jwk
 * @returns {Promise<string>}
 */
export async function fingerprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical)));
  const hex = [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return hex.match(/.{4}/g)?.join(' ') ?? hex;
}

export class E2ee {
  /** @param {import('./api.js').Api} api */
  constructor(api) {
    this.api = api;
    /** @type {Map<string, Promise<CryptoKey>>} */
    this.aesKeys = new Map();
    /** @type {Map<string, Promise<import('./api.js').UserKeys>>} */
    this.peerKeys = new Map();
    /** @type {Promise<LocalKey> | null} */
    this.mine = null;
    this.username = '';
  }

  get supported() {
    return Boolean(globalThis.crypto?.subtle && globalThis.indexedDB);
  }

  /**
   * This browser's current key for `username`, generated and published on first use.
   * @param {string} username
   * @returns {Promise<LocalKey>}
   */
  myKey(username) {
    if (this.mine && this.username === username) return this.mine;
    this.username = username;
    this.mine = (async () => {
      const [existing] = await localKeys(username);
      if (existing) {
        await this.api.putKey(existing.keyId, existing.jwk); // 200 when already published
        return existing;
      }
      return this.generate(username);
    })();
    this.mine.catch(() => { this.mine = null; });
    return this.mine;
  }

  /**
   * Rotation: a new key pair becomes the current key; the old private keys stay in
   * IndexedDB (and the old public keys on the server), so old messages stay readable.
   * @param {string} username
   * @returns {Promise<LocalKey>}
   */
  rotate(username) {
    this.username = username;
    this.mine = this.generate(username);
    this.mine.catch(() => { this.mine = null; });
    return this.mine;
  }

  /** @param {string} username @returns {Promise<LocalKey>} */
  async generate(username) {
    const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const full = /** @type {JsonWebKey} */ (await crypto.subtle.exportKey('jwk', pair.publicKey));
    /** @type {import('./api.js').PublicJwk} */
    const jwk = { kty: 'EC', crv: 'P-256', x: String(full.x), y: String(full.y) };
    const rand = b64(crypto.getRandomValues(new Uint8Array(6))).replace(/[+/=]/g, '');
    const keyId = `k-${new Date().toISOString().slice(0, 10)}-${rand}`;
    await this.api.putKey(keyId, jwk);
    /** @type {LocalKey} */
    const key = { id: `${username.toLowerCase()}/${keyId}`, username: username.toLowerCase(), keyId, privateKey: pair.privateKey, jwk, created: Date.now() };
    await saveKey(key);
    return key;
  }

  /** @param {string} username @param {boolean} [fresh] */
  keysOf(username, fresh = false) {
    const k = username.toLowerCase();
    let p = this.peerKeys.get(k);
    if (!p || fresh) {
      p = this.api.keys(username);
      this.peerKeys.set(k, p);
      p.catch(() => this.peerKeys.delete(k));
    }
    return p;
  }

  /**
   * The message key between `mine` and the peer's public key `theirs` (the key itself, not
   * a key id: which key a key id stands for is decided by the caller, see peer-keys.js).
   * @param {LocalKey} mine
   * @param {import('./api.js').PublicJwk} theirs
   * @returns {Promise<CryptoKey>}
   */
  aesKey(mine, theirs) {
    const id = `${mine.id}|${theirs.x}|${theirs.y}`;
    let p = this.aesKeys.get(id);
    if (!p) {
      p = (async () => {
        const bits = await crypto.subtle.deriveBits({ name: 'ECDH', public: await importPublic(theirs) }, mine.privateKey, 256);
        const hkdf = await crypto.subtle.importKey('raw', bits, 'HKDF', false, ['deriveKey']);
        return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: SALT, info: INFO }, hkdf,
          { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      })();
      this.aesKeys.set(id, p);
      p.catch(() => this.aesKeys.delete(id));
    }
    return p;
  }

  /**
   * Encrypts `text` from `me` to `recipient`'s key `to`, exactly that key (the caller has
   * checked it against the keys this browser remembers).
   * @param {string} me
   * @param {string} recipient the user name as the server spells it
   * @param {import('./api.js').PublishedKey} to
   * @param {string} text
   * @returns {Promise<Sealed>}
   */
  async seal(me, recipient, to, text) {
    const mine = await this.myKey(me);
    const key = await this.aesKey(mine, to.jwk);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const aad = new TextEncoder().encode(`${me}|${recipient}|${mine.keyId}|${to.key_id}`);
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, new TextEncoder().encode(text));
    return { ciphertext: b64(ct), iv: b64(iv), sender_key_id: mine.keyId, recipient_key_id: to.key_id };
  }

  /**
   * Decrypts a DM to or from `me`, with `peerJwk` as the other side's key (the one the
   * message's key id stands for). Throws when this browser lacks the private key, or the
   * message was not made with these keys.
   * @param {string} me
   * @param {import('./api.js').DirectMessage} msg
   * @param {import('./api.js').PublicJwk} peerJwk
   * @returns {Promise<string>}
   */
  async open(me, msg, peerJwk) {
    if (!msg.ciphertext || !msg.iv || !msg.sender_key_id || !msg.recipient_key_id) throw new Error('not encrypted');
    const outgoing = msg.sender.toLowerCase() === me.toLowerCase();
    const myKeyId = outgoing ? msg.sender_key_id : msg.recipient_key_id;
    const mine = (await localKeys(me)).find((k) => k.keyId === myKeyId);
    if (!mine) throw new Error('no private key');
    const key = await this.aesKey(mine, peerJwk);
    const aad = new TextEncoder().encode(`${msg.sender}|${msg.recipient}|${msg.sender_key_id}|${msg.recipient_key_id}`);
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(msg.iv), additionalData: aad }, key, unb64(msg.ciphertext));
    return new TextDecoder().decode(pt);
  }
}
