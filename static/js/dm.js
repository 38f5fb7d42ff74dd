// @ts-check
// Direct messages: conversations with unread counts, threads, sending (encrypted when both
// sides have a key, docs/e2ee.md), read receipts, live delivery over the user socket. Peer
// keys are checked against the ones this browser remembers (peer-keys.js) before anything is
// encrypted to them or a message is shown as theirs. No DOM.

import { E2ee, fingerprint } from './e2ee.js';
import { PeerKeys, sameJwk } from './peer-keys.js';

/**
 * @typedef {import('./api.js').DirectMessage} DirectMessage
 * @typedef {import('./api.js').PublishedKey} PublishedKey
 * @typedef {{msg: DirectMessage, text: string | null, encrypted: boolean, failed: boolean, newKey: string | null}} Shown
 *   `newKey`: the fingerprint of the peer's key the message came with (from them, or to them
 *   from another device of ours) when this browser had not accepted that key; null otherwise
 * @typedef {{onMessage: (m: Shown) => void, onRead: (upTo: number) => void, onReload: () => void}} ThreadHooks
 * @typedef {{state: 'plain', username: string}
 *   | {state: 'ok', username: string, key: PublishedKey, fp: string}
 *   | {state: 'changed', username: string, key: PublishedKey, fp: string, fromFp: string}
 *   | {state: 'gone', username: string, fromFp: string}} KeyCheck
 *   What sending to a peer would do now. `plain`: neither this browser nor the server knows a
 *   key of theirs (plain text). `ok`: encrypt to `key`, the remembered one. `changed`: the
 *   server's current key (`key`, `fp`) is not the accepted one (`fromFp`): ask first.
 *   `gone`: the server lists no key although one is remembered: send nothing.
 */

/** Sending stopped before anything left the browser: `check` says why (changed or gone). */
export class KeyCheckError extends Error {
  /** @param {KeyCheck & {state: 'changed' | 'gone'}} check */
  constructor(check) {
    super(check.state === 'gone' ? `${check.username} has no key any more` : `the key of ${check.username} changed`);
    this.check = check;
  }
}

export class DmService {
  /**
   * @param {import('./api.js').Api} api
   * @param {import('./session.js').Session} session
   * @param {import('./user-socket.js').UserSocket} socket
   */
  constructor(api, session, socket) {
    this.api = api;
    this.session = session;
    this.e2ee = new E2ee(api);
    this.peerKeys = new PeerKeys();
    /** @type {import('./api.js').Conversation[]} */
    this.conversations = [];
    /** @type {Set<(n: number) => void>} */
    this.unreadListeners = new Set();
    /** @type {Set<() => void>} */
    this.listListeners = new Set();
    /** @type {{peer: string, hooks: ThreadHooks} | null} */
    this.thread = null;
    socket.on((msg) => this.onEvent(msg));
    socket.onReconnect(() => {
      void this.refresh();
      this.thread?.hooks.onReload();
    });
  }

  get me() { return this.session.user?.username ?? ''; }

  /** After sign-in: the conversations, and this browser's key published (first use). */
  start() {
    void this.refresh();
    if (this.e2ee.supported && this.me) this.e2ee.myKey(this.me).catch(() => { /* retried on send */ });
  }

  stop() {
    this.conversations = [];
    this.thread = null;
    this.emitList();
  }

  async refresh() {
    if (!this.session.user) return;
    try {
      this.conversations = await this.api.conversations();
      this.emitList();
    } catch { /* offline: keep the last list */ }
  }

  /** @param {(n: number) => void} fn */
  onUnread(fn) { this.unreadListeners.add(fn); }
  /** @param {() => void} fn @returns {() => void} */
  onList(fn) { this.listListeners.add(fn); return () => this.listListeners.delete(fn); }

  emitList() {
    const n = this.conversations.reduce((sum, c) => sum + c.unread, 0);
    for (const fn of this.unreadListeners) fn(n);
    for (const fn of this.listListeners) fn();
  }

  /** @param {{type: string, [key: string]: any}} event */
  onEvent(event) {
    if (event.type === 'dm') {
      /** @type {DirectMessage} */
      const msg = event.message;
      const incoming = msg.sender.toLowerCase() !== this.me.toLowerCase();
      const peer = incoming ? msg.sender : msg.recipient;
      const open = this.thread && this.thread.peer.toLowerCase() === peer.toLowerCase();
      let conv = this.conversations.find((c) => c.username.toLowerCase() === peer.toLowerCase());
      if (!conv) {
        void this.refresh();
      } else {
        conv.last_message = msg;
        if (incoming && !open) conv.unread += 1;
        this.conversations.sort((a, b) => b.last_message.id - a.last_message.id);
        this.emitList();
      }
      if (open && this.thread) {
        const hooks = this.thread.hooks;
        void this.show(msg).then((s) => hooks.onMessage(s));
        if (incoming) void this.markRead(peer, msg.id);
      }
    } else if (event.type === 'dm_read') {
      if (this.thread && this.thread.peer.toLowerCase() === String(event.reader).toLowerCase()) {
        this.thread.hooks.onRead(Number(event.up_to));
      }
    }
  }

  /**
   * Decrypts `msg` with the peer key its key id stands for: the remembered key when this
   * browser has one by that id (whatever the server lists now), else the server's, and the
   * message is marked as coming with a new key.
   * @param {DirectMessage} msg
   * @returns {Promise<Shown>}
   */
  async show(msg) {
    if (typeof msg.text === 'string') return { msg, text: msg.text, encrypted: false, failed: false, newKey: null };
    const outgoing = msg.sender.toLowerCase() === this.me.toLowerCase();
    const peer = outgoing ? msg.recipient : msg.sender;
    const keyId = (outgoing ? msg.recipient_key_id : msg.sender_key_id) ?? '';
    /** @type {string | null} */
    let newKey = null;
    try {
      if (!this.peerKeys.get(this.me, peer)) await this.check(peer).catch(() => null); // first contact
      /** @type {import('./api.js').PublicJwk | null} */
      let jwk = this.peerKeys.get(this.me, peer)?.keys[keyId] ?? null;
      if (!jwk) {
        let keys = await this.e2ee.keysOf(peer);
        let listed = keys.keys.find((k) => k.key_id === keyId);
        if (!listed) {
          keys = await this.e2ee.keysOf(peer, true);
          listed = keys.keys.find((k) => k.key_id === keyId);
        }
        if (!listed) throw new Error('unknown key');
        jwk = listed.jwk;
        newKey = await fingerprint(jwk);
      }
      return { msg, text: await this.e2ee.open(this.me, msg, jwk), encrypted: true, failed: false, newKey };
    } catch {
      return { msg, text: null, encrypted: true, failed: true, newKey };
    }
  }

  /**
   * Opens a conversation: its messages (oldest first), decrypted, marked read.
   * @param {string} peer
   * @param {ThreadHooks} hooks
   * @returns {Promise<{messages: Shown[], hasMore: boolean}>}
   */
  async open(peer, hooks) {
    this.thread = { peer, hooks };
    if (this.e2ee.supported) {
      await this.e2ee.myKey(this.me).catch(() => null);
      if (!this.peerKeys.get(this.me, peer)) await this.check(peer).catch(() => null); // first contact
    }
    const page = await this.api.dms(peer, { limit: 50 });
    const shown = await Promise.all([...page].reverse().map((m) => this.show(m)));
    const lastIncoming = [...page].find((m) => m.sender.toLowerCase() === peer.toLowerCase() && !m.read_at);
    if (lastIncoming) await this.markRead(peer, lastIncoming.id);
    return { messages: shown, hasMore: page.length === 50 };
  }

  /**
   * @param {string} peer
   * @param {number} beforeId
   * @returns {Promise<{messages: Shown[], hasMore: boolean}>}
   */
  async older(peer, beforeId) {
    const page = await this.api.dms(peer, { before: beforeId, limit: 50 });
    return { messages: await Promise.all([...page].reverse().map((m) => this.show(m))), hasMore: page.length === 50 };
  }

  /** @param {string} peer */
  close(peer) {
    if (this.thread?.peer === peer) this.thread = null;
  }

  /** @param {string} peer @param {number} upTo */
  async markRead(peer, upTo) {
    try {
      await this.api.markRead(peer, upTo);
    } catch { return; }
    const conv = this.conversations.find((c) => c.username.toLowerCase() === peer.toLowerCase());
    if (conv && conv.unread) {
      conv.unread = 0;
      this.emitList();
    }
  }

  /**
   * What sending to `peer` would do now, from a fresh look at their keys checked against the
   * remembered ones. The first time a peer has a key, their listed keys are remembered and
   * the current one accepted (trust on first use); after that nothing is accepted without
   * the user (accept()).
   * @param {string} peer
   * @returns {Promise<KeyCheck>}
   */
  async check(peer) {
    if (!this.e2ee.supported) return { state: 'plain', username: peer };
    const keys = await this.e2ee.keysOf(peer, true);
    const username = keys.username;
    let known = this.peerKeys.get(this.me, username);
    if (!known) {
      if (!keys.current) return { state: 'plain', username };
      known = await this.peerKeys.firstContact(this.me, username, keys.keys, keys.current, fingerprint);
    }
    const accepted = known.keys[known.accepted];
    const fromFp = accepted.fp ?? await fingerprint(accepted);
    if (!keys.current) return { state: 'gone', username, fromFp };
    const fp = await fingerprint(keys.current.jwk);
    if (keys.current.key_id === known.accepted && sameJwk(accepted, keys.current.jwk)) {
      return { state: 'ok', username, key: keys.current, fp };
    }
    return { state: 'changed', username, key: keys.current, fp, fromFp };
  }

  /**
   * The user compared fingerprints and accepts `key` as `peer`'s: it is encrypted to from
   * now on, and messages that came with it are no longer marked.
   * @param {string} peer
   * @param {PublishedKey} key
   */
  accept(peer, key) {
    this.peerKeys.accept(this.me, peer, key);
  }

  /**
   * The state of the conversation with `peer` (check()), and this browser's own fingerprint.
   * @param {string} peer
   * @returns {Promise<{check: KeyCheck, mine: string | null}>}
   */
  async security(peer) {
    if (!this.e2ee.supported) return { check: { state: 'plain', username: peer }, mine: null };
    const [mine, check] = await Promise.all([this.e2ee.myKey(this.me).catch(() => null), this.check(peer)]);
    return { check, mine: mine ? await fingerprint(mine.jwk) : null };
  }

  /**
   * This browser's key fingerprint, and a way to rotate the key.
   * @returns {Promise<string | null>}
   */
  async myFingerprint() {
    if (!this.e2ee.supported || !this.me) return null;
    return fingerprint((await this.e2ee.myKey(this.me)).jwk);
  }

  /** @returns {Promise<string>} the new key's fingerprint */
  async rotateKey() {
    return fingerprint((await this.e2ee.rotate(this.me)).jwk);
  }

  /**
   * Sends `text` to `peer`: encrypted to their accepted key; in plain text only while no key
   * of theirs was ever known. Throws KeyCheckError, having sent nothing, when the server's
   * current key is not the accepted one or the server lists none.
   * @param {string} peer
   * @param {string} text
   * @returns {Promise<Shown>}
   */
  async send(peer, text) {
    const check = await this.check(peer);
    if (check.state === 'changed' || check.state === 'gone') throw new KeyCheckError(check);
    if (check.state === 'plain') {
      const msg = await this.api.sendDm(peer, { text });
      return { msg, text, encrypted: false, failed: false, newKey: null };
    }
    const sealed = await this.e2ee.seal(this.me, check.username, check.key, text);
    const msg = await this.api.sendDm(peer, sealed);
    return { msg, text, encrypted: true, failed: false, newKey: null };
  }
}
