// @ts-check
// Ringing people into a room's call: the invites this user is sending and receiving, kept
// from the user socket (`invite`, `invite_ended`) and `GET /api/v1/invites` (on every socket
// open, so a tab opened while a call rings rings too). Every tab of both people sees the same
// invites; each stops ringing on `invite_ended`, or by itself at `expires_at`. No DOM.

import { ApiError } from './api.js';

/**
 * @typedef {import('./api.js').Invite} Invite
 * @typedef {'accepted' | 'declined' | 'cancelled' | 'timeout' | 'gone'} Outcome `gone`: no
 *   longer pending, for a reason this tab didn't hear
 * @typedef {{kind: 'changed'} | {kind: 'ended', invite: Invite, outcome: Outcome, byUserId: number | null}} InviteEvent
 */

/** How long after `expires_at` a tab stops ringing by itself, if the server said nothing. */
const EXPIRY_GRACE_MS = 1000;
/** A tab rings at least this long, whatever its clock says about `expires_at`. */
const MIN_RING_MS = 5000;

export class InviteService {
  /**
   * @param {import('./api.js').Api} api
   * @param {import('./session.js').Session} session
   * @param {import('./user-socket.js').UserSocket} socket
   */
  constructor(api, session, socket) {
    this.api = api;
    this.session = session;
    /** @type {Map<string, Invite>} ringing for me */
    this.incoming = new Map();
    /** @type {Map<string, Invite>} ringing someone else, sent by me (from any tab) */
    this.outgoing = new Map();
    /** Ids that ended: a late answer or list doesn't bring them back. */
    this.ended = new Set();
    /** @type {Map<string, ReturnType<typeof setTimeout>>} */
    this.expiry = new Map();
    /** @type {Set<(ev: InviteEvent) => void>} */
    this.listeners = new Set();
    this.running = false;
    socket.on((msg) => { if (this.running) this.handle(msg); });
    socket.onOpen(() => { if (this.running) void this.load(); });
  }

  start() {
    this.running = true;
  }

  stop() {
    this.running = false;
    for (const timer of this.expiry.values()) clearTimeout(timer);
    this.expiry.clear();
    this.incoming.clear();
    this.outgoing.clear();
    this.ended.clear();
    this.emit({ kind: 'changed' });
  }

  /** @param {(ev: InviteEvent) => void} fn @returns {() => void} unsubscribe */
  on(fn) {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** @param {InviteEvent} ev */
  emit(ev) { for (const fn of [...this.listeners]) fn(ev); }

  /** The invites ringing for me, oldest first. @returns {Invite[]} */
  ringing() {
    return [...this.incoming.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  /** My pending invites into `roomId`, oldest first. @param {number} roomId @returns {Invite[]} */
  calling(roomId) {
    return [...this.outgoing.values()].filter((i) => i.room_id === roomId)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  /** Replaces what the server no longer lists (and was known before asking) and adds the rest. */
  async load() {
    const before = new Set([...this.incoming.keys(), ...this.outgoing.keys()]);
    let list;
    try {
      list = await this.api.invites();
    } catch {
      return; // the socket's events still arrive; the next open asks again
    }
    if (!this.running) return;
    const listed = new Set([...list.incoming, ...list.outgoing].map((i) => i.id));
    for (const id of before) {
      if (!listed.has(id)) this.end(id, 'gone', null);
    }
    for (const invite of [...list.incoming, ...list.outgoing]) this.add(invite, false);
    this.emit({ kind: 'changed' });
  }

  /** @param {import('./user-socket.js').UserEvent} msg */
  handle(msg) {
    if (msg.type === 'invite' && msg.invite) {
      this.add(/** @type {Invite} */ (msg.invite), true);
    } else if (msg.type === 'invite_ended' && typeof msg.invite_id === 'string') {
      this.end(msg.invite_id, /** @type {Outcome} */ (msg.outcome ?? 'gone'), typeof msg.by_user_id === 'number' ? msg.by_user_id : null);
    }
  }

  /**
   * Keeps a pending invite (mine or for me) and its local expiry.
   * @param {Invite} invite
   * @param {boolean} notify
   */
  add(invite, notify) {
    const me = this.session.user?.id;
    if (this.ended.has(invite.id) || me === undefined) return;
    const map = invite.to_user_id === me ? this.incoming : invite.from_user_id === me ? this.outgoing : null;
    if (!map) return;
    const known = map.has(invite.id);
    map.set(invite.id, invite);
    if (!known) {
      const expires = Date.parse(invite.expires_at);
      const wait = Number.isNaN(expires) ? 60_000 : Math.max(MIN_RING_MS, expires - Date.now() + EXPIRY_GRACE_MS);
      this.expiry.set(invite.id, setTimeout(() => this.end(invite.id, 'timeout', null), wait));
    }
    if (notify && !known) this.emit({ kind: 'changed' });
  }

  /**
   * @param {string} id
   * @param {Outcome} outcome
   * @param {number | null} byUserId
   */
  end(id, outcome, byUserId) {
    const invite = this.incoming.get(id) ?? this.outgoing.get(id);
    this.ended.add(id);
    const timer = this.expiry.get(id);
    if (timer) clearTimeout(timer);
    this.expiry.delete(id);
    if (!invite) return;
    this.incoming.delete(id);
    this.outgoing.delete(id);
    this.emit({ kind: 'ended', invite, outcome, byUserId });
  }

  /**
   * Rings `username` into room `roomId`.
   * @param {number} roomId
   * @param {string} username
   * @returns {Promise<Invite>}
   */
  async invite(roomId, username) {
    const invite = await this.api.invite(roomId, username);
    if (!this.outgoing.has(invite.id)) {
      this.add(invite, false);
      this.emit({ kind: 'changed' });
    }
    return invite;
  }

  /**
   * Accepts a call: the server makes me a member of the room. Ends ringing in this tab now
   * (the others hear `invite_ended`).
   * @param {string} id
   * @returns {Promise<number>} the room to join
   */
  async accept(id) {
    try {
      const { room_id: roomId } = await this.api.acceptInvite(id);
      this.end(id, 'accepted', this.session.user?.id ?? null);
      return roomId;
    } catch (err) {
      this.forgetIfGone(id, err);
      throw err;
    }
  }

  /** @param {string} id */
  async decline(id) {
    try {
      await this.api.declineInvite(id);
      this.end(id, 'declined', this.session.user?.id ?? null);
    } catch (err) {
      this.forgetIfGone(id, err);
      throw err;
    }
  }

  /** Stops ringing someone (the caller hangs up). @param {string} id */
  async cancel(id) {
    try {
      await this.api.cancelInvite(id);
      this.end(id, 'cancelled', this.session.user?.id ?? null);
    } catch (err) {
      this.forgetIfGone(id, err);
      throw err;
    }
  }

  /** A 404 means the invite is no longer pending: stop showing it. @param {string} id @param {unknown} err */
  forgetIfGone(id, err) {
    if (err instanceof ApiError && err.status === 404) this.end(id, 'gone', null);
  }
}
