// @ts-check
// The HTTP API (README "HTTP API"): one fetch wrapper and one function per endpoint. Errors
// become ApiError with the server's `code`, `message` and `field`. No DOM.

/**
 * @typedef {{id: number, username: string, created_at: string}} User
 * @typedef {{token: string, token_type: string, expires_in: number, user: User}} SessionInfo
 * @typedef {'owner' | 'moderator' | 'member'} Role
 * @typedef {{id: number, name: string, owner_id: number, created_at: string, role: Role}} Room
 * @typedef {{user_id: number, username: string, role: Role, joined_at: string}} Member
 * @typedef {{user_id: number, username: string, role: Role, online: boolean, in_call: boolean, participants: number}} Presence
 * @typedef {{id: number, room_id: number, user_id: number, username: string, text: string, created_at: string}} ChatMessage
 * @typedef {{messages: ChatMessage[], has_more: boolean}} History
 * @typedef {{kty: string, crv: string, x: string, y: string}} PublicJwk
 * @typedef {{key_id: string, jwk: PublicJwk, created_at: string}} PublishedKey
 * @typedef {{username: string, current: PublishedKey | null, keys: PublishedKey[]}} UserKeys
 * @typedef {{id: number, sender: string, recipient: string, text?: string, ciphertext?: string, iv?: string,
 *   sender_key_id?: string, recipient_key_id?: string, created_at: string, read_at: string | null}} DirectMessage
 * @typedef {{user_id: number, username: string, online: boolean, last_message: DirectMessage, unread: number}} Conversation
 * @typedef {{id: number, user_id: number, username: string, participant_id: number, start_ms: number, end_ms: number,
 *   started_at: string, text: string}} Segment
 * @typedef {{id: number, room_id: number, session_id: number, requested_by: number, requested_by_name: string,
 *   source: string, model?: string | null, reason?: string | null, text: string, segments: number, messages: number,
 *   started_at: string, ended_at: string, created_at: string}} Summary
 * @typedef {{status: string, chats?: number}} Delivery
 * @typedef {{summary: Summary, created: boolean, telegram: Delivery}} SummaryOutcome
 * @typedef {{prompt: string, is_default: boolean}} Prompt
 * @typedef {{token: string, deep_link: string, expires_in_secs: number}} TelegramLink
 * @typedef {'confirmed' | 'pending' | 'absent'} TelegramStatus
 * @typedef {{id: string, room_id: number, room_name: string, from_user_id: number, from_username: string,
 *   to_user_id: number, to_username: string, created_at: string, expires_at: string}} Invite
 * @typedef {{incoming: Invite[], outgoing: Invite[]}} Invites
 * @typedef {{endpoint: string, expirationTime?: number | null, keys?: Record<string, string>}} PushSubscriptionBody
 */

/** An error answered by the API (or the network). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status; 0 when the server could not be reached
   * @param {string} code the server's stable code (`invalid_credentials`, …) or `network`
   * @param {string} message
   * @param {string | undefined} field the request field at fault, when the server names one
   */
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/**
 * A single-use ticket for opening a WebSocket, fetched before every (re)connect: browsers
 * can't send `Authorization` on a WebSocket, and the server refuses a JWT in the URL (it
 * would end up in access logs). A ticket lasts 30 s and works once (docs/protocol.md).
 * @param {string} token the session's JWT
 * @returns {Promise<string>}
 */
export async function wsTicket(token) {
  let res;
  try {
    res = await fetch('/api/v1/ws-ticket', {
      method: 'POST', headers: { accept: 'application/json', authorization: `Bearer ${token}` },
    });
  } catch (err) {
    throw new ApiError(0, 'network', String(err), undefined);
  }
  /** @type {any} */
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok || typeof data?.ticket !== 'string') {
    const e = data?.error ?? {};
    throw new ApiError(res.status, String(e.code ?? 'error'), String(e.message ?? res.statusText), e.field ?? undefined);
  }
  return data.ticket;
}

/**
 * The client: a token source and a hook for 401s on authenticated calls (expired token).
 */
export class Api {
  /**
   * @param {() => string | null} getToken
   * @param {() => void} onUnauthorized called when an authenticated request answers 401
   */
  constructor(getToken, onUnauthorized) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  /**
   * @param {string} method
   * @param {string} path under /api/v1
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const token = this.getToken();
    if (token) headers.authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(`/api/v1${path}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, 'network', String(err), undefined);
    }
    if (res.status === 204) return null;
    const text = await res.text();
    /** @type {any} */
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const e = data?.error ?? {};
      const err = new ApiError(res.status, String(e.code ?? 'error'), String(e.message ?? res.statusText), e.field ?? undefined);
      if (res.status === 401 && token && err.code !== 'invalid_credentials') this.onUnauthorized();
      throw err;
    }
    return data;
  }

  // auth
  /** @param {string} username @param {string} password @param {string} secret @returns {Promise<SessionInfo>} */
  register(username, password, secret) {
    return this.request('POST', '/auth/register', { username, password, registration_secret: secret });
  }
  /** @param {string} username @param {string} password @returns {Promise<SessionInfo>} */
  login(username, password) { return this.request('POST', '/auth/login', { username, password }); }
  /** @returns {Promise<User>} */
  me() { return this.request('GET', '/auth/me'); }
  /** Ends this session's token on the server. @returns {Promise<null>} */
  logout() { return this.request('POST', '/auth/logout'); }

  // rooms
  /** @returns {Promise<Room[]>} */
  rooms() { return this.request('GET', '/rooms'); }
  /** @param {number} id @returns {Promise<Room>} */
  room(id) { return this.request('GET', `/rooms/${id}`); }
  /** @param {string} name @returns {Promise<Room>} */
  createRoom(name) { return this.request('POST', '/rooms', { name }); }
  /** @param {number} id @returns {Promise<null>} */
  deleteRoom(id) { return this.request('DELETE', `/rooms/${id}`); }
  /** @param {number} id @returns {Promise<Member[]>} members, owner first */
  members(id) { return this.request('GET', `/rooms/${id}/members`); }
  /** @param {number} id @param {string} username @param {Role} role @returns {Promise<Member>} */
  addMember(id, username, role) { return this.request('POST', `/rooms/${id}/members`, { username, role }); }
  /** @param {number} id @param {number} userId @param {Role} role @returns {Promise<Member>} */
  changeRole(id, userId, role) { return this.request('PATCH', `/rooms/${id}/members/${userId}`, { role }); }
  /** @param {number} id @param {number} userId @returns {Promise<null>} */
  removeMember(id, userId) { return this.request('DELETE', `/rooms/${id}/members/${userId}`); }
  /** @param {number} id @returns {Promise<Presence[]>} */
  presence(id) { return this.request('GET', `/rooms/${id}/presence`); }

  // chat
  /** @param {number} id @param {string} text @returns {Promise<ChatMessage>} */
  postMessage(id, text) { return this.request('POST', `/rooms/${id}/messages`, { text }); }
  /**
   * @param {number} id
   * @param {{before?: number, after?: number, limit?: number}} q
   * @returns {Promise<History>}
   */
  messages(id, q) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
    return this.request('GET', `/rooms/${id}/messages?${params}`);
  }

  // keys and DMs
  /** @param {string} keyId @param {PublicJwk} jwk @returns {Promise<PublishedKey>} */
  putKey(keyId, jwk) { return this.request('PUT', '/keys', { key_id: keyId, jwk }); }
  /** @param {string} username @returns {Promise<UserKeys>} */
  keys(username) { return this.request('GET', `/keys/${encodeURIComponent(username)}`); }
  /** @returns {Promise<Conversation[]>} */
  conversations() { return this.request('GET', '/dm'); }
  /** @param {string} username @param {{before?: number, limit?: number}} q @returns {Promise<DirectMessage[]>} newest first */
  dms(username, q = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
    return this.request('GET', `/dm/${encodeURIComponent(username)}?${params}`);
  }
  /** @param {string} username @param {Record<string, string>} body @returns {Promise<DirectMessage>} */
  sendDm(username, body) { return this.request('POST', `/dm/${encodeURIComponent(username)}`, body); }
  /** @param {string} username @param {number} [upTo] */
  markRead(username, upTo) { return this.request('POST', `/dm/${encodeURIComponent(username)}/read`, upTo ? { up_to: upTo } : {}); }

  // agent
  /** @param {number} id @returns {Promise<Segment[]>} */
  async transcript(id) { return (await this.request('GET', `/rooms/${id}/transcript`))?.segments ?? []; }
  /** @param {number} id @returns {Promise<Summary[]>} */
  async summaries(id) { return (await this.request('GET', `/rooms/${id}/summaries?limit=20`))?.summaries ?? []; }
  /** @param {number} id @returns {Promise<SummaryOutcome>} */
  summarise(id) { return this.request('POST', `/rooms/${id}/summary`); }

  // invites (ringing someone into a room's call)
  /** @param {number} roomId @param {string} username @returns {Promise<Invite>} */
  invite(roomId, username) { return this.request('POST', `/rooms/${roomId}/invites`, { username }); }
  /** @returns {Promise<Invites>} the pending ones, to and from me */
  async invites() {
    const r = await this.request('GET', '/invites');
    return { incoming: r?.incoming ?? [], outgoing: r?.outgoing ?? [] };
  }
  /** @param {string} id @returns {Promise<{room_id: number}>} */
  acceptInvite(id) { return this.request('POST', `/invites/${encodeURIComponent(id)}/accept`); }
  /** @param {string} id @returns {Promise<null>} */
  declineInvite(id) { return this.request('POST', `/invites/${encodeURIComponent(id)}/decline`); }
  /** @param {string} id @returns {Promise<null>} */
  cancelInvite(id) { return this.request('DELETE', `/invites/${encodeURIComponent(id)}`); }

  // web push
  /** @returns {Promise<string>} the VAPID public key, base64url */
  async vapidKey() { return String((await this.request('GET', '/push/vapid-key'))?.public_key ?? ''); }
  /** @param {PushSubscriptionBody} subscription @returns {Promise<unknown>} */
  addPushSubscription(subscription) { return this.request('POST', '/push/subscriptions', subscription); }
  /** @param {string} endpoint @returns {Promise<null>} */
  removePushSubscription(endpoint) { return this.request('DELETE', '/push/subscriptions', { endpoint }); }

  // settings
  /** @returns {Promise<Prompt>} */
  prompt() { return this.request('GET', '/ai/prompt'); }
  /** @param {string} prompt @returns {Promise<Prompt>} */
  savePrompt(prompt) { return this.request('PUT', '/ai/prompt', { prompt }); }
  /** @returns {Promise<Prompt | null>} */
  resetPrompt() { return this.request('DELETE', '/ai/prompt'); }
  /** @returns {Promise<TelegramLink>} */
  telegramLink() { return this.request('POST', '/telegram/link'); }
  /** @returns {Promise<TelegramStatus>} */
  async telegramStatus() { return (await this.request('GET', '/telegram/status'))?.status ?? 'absent'; }
  /** @returns {Promise<null>} */
  telegramUnlink() { return this.request('DELETE', '/telegram/link'); }
}
