// @ts-check
// The room WebSocket: JSON messages tagged by `type` (docs/protocol.md). No DOM here.

/**
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {{participant_id: number, user_id: number, username: string, role: string, muted: boolean}} ParticipantInfo
 * @typedef {{type: string, [key: string]: any}} ServerMessage
 */

export class RoomSocket {
  /**
   * @param {number} roomId
   * @param {string} token JWT; sent as a query parameter because browsers can't set headers
   *   on a WebSocket.
   */
  constructor(roomId, token) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/api/v1/rooms/${roomId}/ws?token=${encodeURIComponent(token)}`;
    /** @type {Map<string, Array<(msg: ServerMessage) => void>>} */
    this.handlers = new Map();
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener('open', () => resolve(undefined));
      this.ws.addEventListener('error', () => reject(new Error('websocket failed')));
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

  /** @param {Record<string, unknown>} message */
  send(message) {
    this.ws.send(JSON.stringify(message));
  }

  close() {
    this.ws.close(1000, 'bye');
  }
}
