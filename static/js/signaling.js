// @ts-check
// The room WebSocket: JSON messages tagged by `type` (docs/protocol.md). No DOM here.

/**
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {{participant_id: number, user_id: number, username: string, role: string, muted: boolean}} ParticipantInfo
 * @typedef {{type: string, [key: string]: any}} ServerMessage
 */

/** Close codes after which reconnecting is pointless (docs/protocol.md). */
export const FINAL_CLOSE_CODES = Object.freeze({
  /** The same user joined from a newer connection (another tab, or our own reconnect). */
  REPLACED: 4001,
  /** Removed from the room. */
  REMOVED: 4003,
  /** The room was deleted. */
  ROOM_DELETED: 4004,
});

/** One WebSocket to a room. A dropped socket is not reopened here: `Call` does that. */
export class RoomSocket {
  /**
   * @param {number} roomId
   * @param {string} ticket a fresh single-use ticket (`wsTicket` in api.js): browsers can't
   *   set headers on a WebSocket, and a JWT in the URL would end up in access logs.
   */
  constructor(roomId, ticket) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/api/v1/rooms/${roomId}/ws?ticket=${encodeURIComponent(ticket)}`;
    /** @type {Map<string, Array<(msg: ServerMessage) => void>>} */
    this.handlers = new Map();
    /** @type {Array<(ev: CloseEvent) => void>} */
    this.closeHandlers = [];
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener('open', () => resolve(undefined));
      this.ws.addEventListener('error', () => reject(new Error('websocket failed')));
    });
    // An unobserved rejection would be reported as an error; `close` tells the story.
    this.opened.catch(() => {});
    this.ws.addEventListener('close', (ev) => {
      for (const handler of this.closeHandlers) handler(ev);
    });
    this.ws.addEventListener('message', (ev) => {
      /** @type {ServerMessage} */
      let msg;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      for (const handler of this.handlers.get(msg.type) ?? []) handler(msg);
      for (const handler of this.handlers.get('*') ?? []) handler(msg);
    });
  }

  /**
   * @param {string} type a server message type, or '*' for all
   * @param {(msg: ServerMessage) => void} handler
   */
  on(type, handler) {
    const list = this.handlers.get(type) ?? [];
    list.push(handler);
    this.handlers.set(type, list);
  }

  /** @param {(ev: CloseEvent) => void} handler called once when the socket closes, for any reason */
  onClose(handler) {
    this.closeHandlers.push(handler);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** @param {Record<string, unknown>} message */
  send(message) {
    if (this.isOpen) this.ws.send(JSON.stringify(message));
  }

  /** @param {number} [code] @param {string} [reason] */
  close(code = 1000, reason = 'bye') {
    this.ws.close(code, reason);
  }
}
