// @ts-check
// The peer keys this browser has seen and accepted, per signed-in user (docs/e2ee.md, "Keys
// the browser remembers"). The server only hands out public keys; what it hands out is
// checked against what is remembered here, so a key it swaps in is noticed instead of used.
// Kept in localStorage (public keys only, nothing secret). No DOM.

const PREFIX = 'webcall.peer-keys.';
/** Before key ids were remembered: the fingerprint of each peer's last current key. */
const LEGACY_PREFIX = 'webcall.seen-keys.';
/** Stands for that fingerprint's key when the server no longer lists it (not a valid key id). */
export const LEGACY_KEY_ID = '#legacy';

/**
 * @typedef {import('./api.js').PublicJwk} PublicJwk
 * @typedef {import('./api.js').PublishedKey} PublishedKey
 * @typedef {{kty: string, crv: string, x: string, y: string, seen: number, fp?: string}} KnownKey
 *   `fp`: only for LEGACY_KEY_ID, a key known by its fingerprint alone
 * @typedef {{accepted: string, keys: Record<string, KnownKey>}} Remembered what this browser
 *   knows of one peer: every key it accepted (by key id) and the one it encrypts to
 */

/** @param {PublicJwk} a @param {PublicJwk} b */
export function sameJwk(a, b) {
  return a.kty === b.kty && a.crv === b.crv && a.x === b.x && a.y === b.y;
}

/** @param {PublicJwk} jwk @returns {PublicJwk} */
function publicPart(jwk) {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

export class PeerKeys {
  /** @param {Storage} [storage] */
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
  }

  /** @param {string} me @returns {Record<string, Remembered>} */
  load(me) {
    try {
      const all = JSON.parse(this.storage.getItem(PREFIX + me.toLowerCase()) ?? '{}');
      return all && typeof all === 'object' ? all : {};
    } catch {
      return {};
    }
  }

  /** @param {string} me @param {Record<string, Remembered>} all */
  save(me, all) {
    this.storage.setItem(PREFIX + me.toLowerCase(), JSON.stringify(all));
  }

  /**
   * What `me` remembers of `peer`; null before the first encrypted contact.
   * @param {string} me @param {string} peer
   * @returns {Remembered | null}
   */
  get(me, peer) {
    const r = this.load(me)[peer.toLowerCase()];
    return r && r.accepted && r.keys && r.keys[r.accepted] ? r : null;
  }

  /**
   * First contact (trust on first use): remembers the keys the server lists for `peer` and
   * accepts `current`. A fingerprint remembered by an older version of the app narrows that
   * to the key it names; when the server lists no key with that fingerprint, none is
   * accepted (the fingerprint stands for the accepted key, so the current one is a change).
   * @param {string} me @param {string} peer
   * @param {PublishedKey[]} listed @param {PublishedKey} current
   * @param {(jwk: PublicJwk) => Promise<string>} fingerprint
   * @returns {Promise<Remembered>}
   */
  async firstContact(me, peer, listed, current, fingerprint) {
    const who = peer.toLowerCase();
    let trusted = listed;
    let accepted = current;
    const legacy = this.legacyFingerprint(me, who);
    const all = this.load(me);
    const now = Date.now();
    if (legacy) {
      const match = await (async () => {
        for (const k of listed) if (await fingerprint(k.jwk) === legacy) return k;
        return null;
      })();
      if (!match) {
        all[who] = { accepted: LEGACY_KEY_ID, keys: { [LEGACY_KEY_ID]: { kty: '', crv: '', x: '', y: '', seen: now, fp: legacy } } };
        this.save(me, all);
        return all[who];
      }
      trusted = [match];
      accepted = match;
    }
    /** @type {Record<string, KnownKey>} */
    const keys = {};
    for (const k of trusted) keys[k.key_id] = { ...publicPart(k.jwk), seen: now };
    keys[accepted.key_id] = { ...publicPart(accepted.jwk), seen: now };
    all[who] = { accepted: accepted.key_id, keys };
    this.save(me, all);
    return all[who];
  }

  /**
   * The user accepted `key` as `peer`'s key: it is remembered and encrypted to from now on.
   * @param {string} me @param {string} peer @param {PublishedKey} key
   * @returns {Remembered}
   */
  accept(me, peer, key) {
    const who = peer.toLowerCase();
    const all = this.load(me);
    const r = all[who] && all[who].keys ? all[who] : { accepted: key.key_id, keys: {} };
    r.keys[key.key_id] = { ...publicPart(key.jwk), seen: Date.now() };
    r.accepted = key.key_id;
    all[who] = r;
    this.save(me, all);
    return r;
  }

  /** @param {string} me @param {string} who lower-case @returns {string | null} */
  legacyFingerprint(me, who) {
    try {
      const seen = JSON.parse(this.storage.getItem(LEGACY_PREFIX + me.toLowerCase()) ?? '{}');
      return typeof seen?.[who] === 'string' ? seen[who] : null;
    } catch {
      return null;
    }
  }
}
