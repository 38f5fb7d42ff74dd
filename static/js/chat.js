// @ts-check
// The room chat's state: messages by id in id order, "load older" paging, live messages,
// catch-up after a reconnect (`after=`), and sends that show once even when the broadcast
// and the HTTP answer both arrive. No DOM.

export const MAX_CHARS = 4000;

/** Characters as the server counts them (Unicode scalar values). @param {string} text */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/**
 * @typedef {import('./api.js').ChatMessage} ChatMessage
 * @typedef {{onInsert: (msg: ChatMessage) => void, onOlder: (msgs: ChatMessage[], hasMore: boolean) => void,
 *   onPending: (key: string, text: string) => void, onPendingDone: (key: string, failed: string | null) => void}} ChatHooks
 */

export class ChatStore {
  /**
   * @param {import('./api.js').Api} api
   * @param {number} roomId
   * @param {ChatHooks} hooks
   */
  constructor(api, roomId, hooks) {
    this.api = api;
    this.roomId = roomId;
    this.hooks = hooks;
    /** @type {Map<number, ChatMessage>} */
    this.byId = new Map();
    this.newest = 0;
    this.oldest = 0;
    this.hasOlder = false;
    this.catchingUp = false;
    this.pendingSeq = 0;
  }

  /** Loads the newest page. */
  async load() {
    const page = await this.api.messages(this.roomId, { limit: 50 });
    const msgs = [...page.messages].reverse();
    this.hasOlder = page.has_more;
    for (const m of msgs) this.add(m);
    if (msgs.length) this.oldest = msgs[0].id;
    this.hooks.onOlder([], this.hasOlder);
  }

  /** Loads the page before the oldest message shown. */
  async loadOlder() {
    if (!this.oldest) return;
    const page = await this.api.messages(this.roomId, { before: this.oldest, limit: 50 });
    const msgs = page.messages.filter((m) => !this.byId.has(m.id)).reverse();
    for (const m of msgs) this.byId.set(m.id, m);
    if (msgs.length) this.oldest = Math.min(this.oldest, msgs[0].id);
    this.hasOlder = page.has_more;
    this.hooks.onOlder(msgs, this.hasOlder);
  }

  /** Fetches what arrived after the newest message shown (after a reconnect, or polling). */
  async catchUp() {
    if (this.catchingUp) return;
    this.catchingUp = true;
    try {
      for (let i = 0; i < 20; i++) {
        const page = await this.api.messages(this.roomId, { after: this.newest, limit: 200 });
        for (const m of page.messages) this.add(m);
        if (!page.has_more || !page.messages.length) break;
      }
    } finally {
      this.catchingUp = false;
    }
  }

  /**
   * A message from the socket, the history or a send's answer; shown once.
   * @param {ChatMessage} msg
   */
  add(msg) {
    if (this.byId.has(msg.id)) return;
    this.byId.set(msg.id, msg);
    if (msg.id > this.newest) this.newest = msg.id;
    if (!this.oldest || msg.id < this.oldest) this.oldest = msg.id;
    this.hooks.onInsert(msg);
  }

  /**
   * Sends over HTTP (works whether or not the call's socket is up); the message is shown as
   * pending until the server stored it.
   * @param {string} text
   * @returns {Promise<void>}
   */
  async send(text) {
    this.pendingSeq += 1;
    const key = `pending-${this.pendingSeq}`;
    this.hooks.onPending(key, text);
    try {
      const msg = await this.api.postMessage(this.roomId, text);
      this.hooks.onPendingDone(key, null);
      this.add(msg);
    } catch (err) {
      this.hooks.onPendingDone(key, err instanceof Error ? err.message : String(err));
      throw err;
    }
  }
}
