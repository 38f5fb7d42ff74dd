// @ts-check
// Who is signed in: the token (sessionStorage, or localStorage with "remember me") and the
// user it belongs to. An expired or revoked token ends the session. No DOM.

const KEY = 'webcall.session';

/** @typedef {{token: string, user: import('./api.js').User, expiresAt: number}} Stored */

export class Session {
  constructor() {
    /** @type {Stored | null} */
    this.current = null;
    /** @type {Set<(reason: 'signed_in' | 'signed_out' | 'expired') => void>} */
    this.listeners = new Set();
    for (const storage of [sessionStorage, localStorage]) {
      const raw = storage.getItem(KEY);
      if (!raw) continue;
      try {
        const stored = /** @type {Stored} */ (JSON.parse(raw));
        if (stored.token && stored.user && stored.expiresAt > Date.now()) {
          this.current = stored;
          break;
        }
        storage.removeItem(KEY);
      } catch {
        storage.removeItem(KEY);
      }
    }
  }

  /** @returns {string | null} */
  get token() {
    if (this.current && this.current.expiresAt <= Date.now()) {
      this.end('expired');
    }
    return this.current?.token ?? null;
  }

  /** @returns {import('./api.js').User | null} */
  get user() { return this.current?.user ?? null; }

  /**
   * @param {import('./api.js').SessionInfo} info
   * @param {boolean} remember keep it across browser restarts (localStorage)
   */
  start(info, remember) {
    this.current = { token: info.token, user: info.user, expiresAt: Date.now() + info.expires_in * 1000 };
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    (remember ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(this.current));
    this.emit('signed_in');
  }

  /** @param {'signed_out' | 'expired'} reason */
  end(reason) {
    const had = this.current !== null;
    this.current = null;
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    if (had) this.emit(reason);
  }

  /** @param {(reason: 'signed_in' | 'signed_out' | 'expired') => void} fn */
  onChange(fn) { this.listeners.add(fn); }

  /** @param {'signed_in' | 'signed_out' | 'expired'} reason */
  emit(reason) { for (const fn of this.listeners) fn(reason); }
}
