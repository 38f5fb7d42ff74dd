// @ts-check
// The user WebSocket (`/api/v1/ws`): DMs, read receipts and call invites as they happen;
// while it is open the user is "online". Reconnects by itself with backoff, with a fresh
// single-use ticket each time. No DOM.

import { wsTicket } from './api.js';

/** @typedef {{type: string, [key: string]: any}} UserEvent */

export class UserSocket {
  /** @param {() => string | null} getToken */
  constructor(getToken) {
    this.getToken = getToken;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {Set<(msg: UserEvent) => void>} */
    this.listeners = new Set();
    /** @type {Set<() => void>} */
    this.reconnectListeners = new Set();
    /** @type {Set<() => void>} */
    this.openListeners = new Set();
    this.attempt = 0;
    this.stopped = true;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.pinger = null;
    this.everOpened = false;
    /** @type {() => void} called when a connection closes without ever opening (a refused token?) */
    this.onRefused = () => {};
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  connect() {
    const token = this.getToken();
    if (!token || this.stopped) return;
    wsTicket(token).then((ticket) => this.open(ticket), (err) => {
      if (this.stopped) return;
      if (err?.status === 401) {
        this.onRefused();
        return;
      }
      this.retry();
    });
  }

  /** Waits with backoff, then connects again. */
  retry() {
    const delay = Math.min(30_000, 1000 * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** @param {string} ticket */
  open(ticket) {
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
      this.attempt = 0;
      if (this.everOpened) for (const fn of this.reconnectListeners) fn();
      this.everOpened = true;
      for (const fn of this.openListeners) fn();
      this.pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'ping' }));
      }, 10_000);
    });
    ws.addEventListener('message', (ev) => {
      try {
        const msg = JSON.parse(String(ev.data));
        for (const fn of this.listeners) fn(msg);
      } catch { /* not JSON */ }
    });
    ws.addEventListener('close', () => {
      if (this.pinger) clearInterval(this.pinger);
      this.pinger = null;
      if (this.ws !== ws || this.stopped) return;
      if (!opened) this.onRefused();
      this.retry();
    });
  }

  /** @param {(msg: UserEvent) => void} fn @returns {() => void} unsubscribe */
  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** @param {() => void} fn called after a reconnect (events may have been missed) */
  onReconnect(fn) { this.reconnectListeners.add(fn); }

  /** @param {() => void} fn called on every open, the first included (events flow from then on) */
  onOpen(fn) { this.openListeners.add(fn); }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.pinger) clearInterval(this.pinger);
    const ws = this.ws;
    this.ws = null;
    this.everOpened = false;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'bye');
  }
}
