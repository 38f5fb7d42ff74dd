// @ts-check
// Direct messages: conversations with unread counts, threads, sending (encrypted when both
// sides have a key, docs/e2ee.md), read receipts, live delivery over the user socket. No DOM.

import { E2ee, fingerprint } from './e2ee.js';

/**
 * @typedef {import('./api.js').DirectMessage} DirectMessage
 * @typedef {{msg: DirectMessage, text: string | null, encrypted: boolean, failed: boolean}} Shown
 * @typedef {{onMessage: (m: Shown) => void, onRead: (upTo: number) => void, onReload: () => void}} ThreadHooks
 */

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
   * @param {DirectMessage} msg
   * @returns {Promise<Shown>}
   */
  async show(msg) {
    if (typeof msg.text === 'string') return { msg, text: msg.text, encrypted: false, failed: false };
    try {
      return { msg, text: await this.e2ee.open(this.me, msg), encrypted: true, failed: false };
    } catch {
      return { msg, text: null, encrypted: true, failed: true };
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
    if (this.e2ee.supported) await this.e2ee.myKey(this.me).catch(() => null);
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
   * Whether messages to `peer` can be encrypted now, the fingerprints to compare, and whether
   * the peer's key changed since this browser last saw it (a new device, or a substituted key).
   * @param {string} peer
   * @returns {Promise<{encrypted: boolean, mine: string | null, theirs: string | null, changed: boolean}>}
   */
  async security(peer) {
    if (!this.e2ee.supported) return { encrypted: false, mine: null, theirs: null, changed: false };
    const [mine, keys] = await Promise.all([this.e2ee.myKey(this.me).catch(() => null), this.e2ee.keysOf(peer, true)]);
    const theirs = keys.current ? await fingerprint(keys.current.jwk) : null;
    const storeKey = `webcall.seen-keys.${this.me.toLowerCase()}`;
    /** @type {Record<string, string>} */
    let seen = {};
    try { seen = JSON.parse(localStorage.getItem(storeKey) ?? '{}'); } catch { seen = {}; }
    const who = keys.username.toLowerCase();
    const changed = Boolean(theirs && seen[who] && seen[who] !== theirs);
    if (theirs) {
      seen[who] = theirs;
      localStorage.setItem(storeKey, JSON.stringify(seen));
    }
    return { encrypted: Boolean(mine && keys.current), mine: mine ? await fingerprint(mine.jwk) : null, theirs, changed };
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
   * Sends `text` to `peer`: encrypted when both have a key, else plain.
   * @param {string} peer
   * @param {string} text
   * @returns {Promise<Shown>}
   */
  async send(peer, text) {
    const sealed = this.e2ee.supported ? await this.e2ee.seal(this.me, peer, text) : null;
    const msg = await this.api.sendDm(peer, sealed ?? { text });
    return { msg, text, encrypted: Boolean(sealed), failed: false };
  }
}
