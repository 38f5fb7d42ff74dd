// @ts-check
// One call: the room socket plus one RTCPeerConnection to the SFU. The client offers when it
// joins (its microphone) and again only to restart ICE; otherwise only the server offers,
// when participants come and go. No DOM.
//
// The call heals itself, like a phone call on a train:
// - ICE `disconnected` for 2 s, or `failed`: an ICE restart (a new offer with new
//   credentials on the same socket); the server keeps our place meanwhile.
// - No recovery 10 s after the first restart, `media_closed`, `media_unavailable` (the node
//   carrying the room's media is gone), or the socket dropping (or missing two heartbeats):
//   reconnect with backoff and jitter, join again (the server
//   replaces our old participant) and start new media. The microphone stream is kept.
// - Closed for good only by `leave()`, removal from the room (4003), the room's deletion
//   (4004) or a newer connection of the same user (4001).

import { wsTicket } from './api.js';
import { FINAL_CLOSE_CODES, RoomSocket } from './signaling.js';

/**
 * @typedef {{streamId: string, packets: number, energy: number, level: number}} InboundAudio
 * @typedef {'connecting' | 'connected' | 'reconnecting' | 'closed'} CallState
 * @typedef {{onRemoteStream?: (id: string, stream: MediaStream) => void,
 *            onStatus?: (text: string) => void,
 *            onState?: (state: CallState, detail: string) => void,
 *            onJoined?: (joined: import('./signaling.js').ServerMessage, rejoined: boolean) => void,
 *            onMessage?: (msg: import('./signaling.js').ServerMessage) => void}} CallHooks
 */

/** How long ICE may stay `disconnected` before we restart it. */
const DISCONNECTED_GRACE_MS = 2000;

/**
 * Nothing at all from the server for this long while the call is up and we send audio means
 * the path died (a firewall began dropping UDP, a NAT forgot us): the server's receiver
 * reports on our audio alone come every second. Browsers notice late (Chromium reports
 * `disconnected` only after about 7.5 s), so we restart ICE ourselves; the restart checks
 * every candidate again and the call moves to whichever path still works (ICE-TCP, TURN).
 */
const MEDIA_STALL_MS = 2500;
/** How long ICE restarts may try before we rejoin from scratch. */
const RESTART_DEADLINE_MS = 10_000;
/** Application heartbeat: a socket that answers no ping for two periods is dead. */
const HEARTBEAT_MS = 10_000;
const BACKOFF_BASE_MS = 500;
/** A TURN credential this close to its expiry is treated as expired. */
const TURN_EXPIRY_MARGIN_MS = 30_000;
const BACKOFF_MAX_MS = 10_000;

/**
 * The earliest expiry of the TURN REST credentials among `servers` (username
 * `<expiry unix time>:<user id>`), in ms; null when there are none.
 * @param {import('./signaling.js').IceServer[]} servers
 * @returns {number | null}
 */
function turnExpiry(servers) {
  const expiries = servers
    .map((s) => /^(\d+):/.exec(s.username ?? '')?.[1])
    .filter((e) => e !== undefined)
    .map((e) => Number(e) * 1000);
  return expiries.length > 0 ? Math.min(...expiries) : null;
}

export class Call {
  /**
   * @param {number} roomId
   * @param {string} token
   * @param {CallHooks} [hooks]
   */
  constructor(roomId, token, hooks = {}) {
    this.roomId = roomId;
    this.token = token;
    this.hooks = hooks;
    /** @type {RoomSocket | null} */
    this.socket = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {MediaStream | null} */
    this.mic = null;
    /** @type {number | null} */
    this.participantId = null;
    /** @type {CallState} */
    this.state = 'connecting';
    /**
     * The latest state changes, newest last (what a support request or a test wants to see).
     * @type {{state: CallState, detail: string, at: number}[]}
     */
    this.stateLog = [];
    /** Times the socket was reopened or media rebuilt (for tests and the UI). */
    this.rejoins = 0;
    this.iceRestarts = 0;
    this.left = false;
    this.joinedOnce = false;
    this.reconnectAttempt = 0;
    this.restartPending = false;
    /** @type {number | null} */ this.restartSince = null;
    /**
     * When the TURN credential of the current media stops making allocations (ms), if any.
     * @type {number | null}
     */
    this.turnExpiresAt = null;
    /** @type {ReturnType<typeof setTimeout> | null} */ this.disconnectTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */ this.reconnectTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */ this.heartbeat = null;
    /** @type {ReturnType<typeof setInterval> | null} */ this.stallWatch = null;
    /** ICE restarts because nothing came from the server for MEDIA_STALL_MS. */
    this.stallRestarts = 0;
    this.lastPong = Date.now();
    /** @type {Map<string, string>} */
    this.trackStreams = new Map();
    /** @type {(() => void) | null} */
    this.resolveJoined = null;
    /**
     * Offer/answer steps run one after another: a server offer that arrives while the answer
     * to our offer is still being applied must see the state that answer leaves.
     * @type {Promise<void>}
     */
    this.negotiation = Promise.resolve();
    /** Server offers received (a join in a large room sends the others none). */
    this.serverOffers = 0;
    /** @type {Map<number, number>} CSRC -> participant id, from `track_published` */
    this.sources = new Map();
    /**
     * Per audio slot, its latest CSRC entry when last looked at, and when (this page's clock)
     * that entry last changed: see `slotSpeakers`.
     * @type {Map<string, {source: number, timestamp: number, changedAt: number}>}
     */
    this.slotsSeen = new Map();
  }

  /** @param {() => Promise<void>} step */
  serially(step) {
    this.negotiation = this.negotiation.then(step).catch((err) => {
      this.hooks.onStatus?.(`negotiation failed: ${err}`);
    });
  }

  /** Opens the room socket and joins the call; resolves once joined. */
  join() {
    const joined = new Promise((resolve) => { this.resolveJoined = () => resolve(undefined); });
    this.connect();
    return joined;
  }

  /** @param {CallState} state @param {string} [detail] */
  setState(state, detail = '') {
    if (this.state === 'closed') return;
    this.state = state;
    this.stateLog.push({ state, detail, at: Date.now() });
    if (this.stateLog.length > 100) this.stateLog.shift();
    this.hooks.onState?.(state, detail);
    this.hooks.onStatus?.(detail ? `${state}: ${detail}` : state);
  }

  /** Fetches a ticket (single use: one per socket) and opens the room socket with it. */
  connect() {
    if (this.left) return;
    wsTicket(this.token).then((ticket) => this.openSocket(ticket), (err) => {
      if (this.left) return;
      // The session itself is over: reconnecting can't help.
      if (err?.status === 401) return this.close('signed out');
      this.scheduleReconnect(`connection lost (${err?.code ?? 'network'})`);
    });
  }

  /** @param {string} ticket */
  openSocket(ticket) {
    if (this.left) return;
    const socket = new RoomSocket(this.roomId, ticket);
    this.socket = socket;
    socket.on('*', (msg) => this.hooks.onMessage?.(msg));
    socket.on('joined', (msg) => { void this.onJoined(msg); });
    socket.on('answer', (msg) => this.serially(() => this.onAnswer(msg.sdp)));
    socket.on('offer', (msg) => {
      this.serverOffers += 1;
      this.serially(() => this.answerServerOffer(msg.sdp));
    });
    // A large room's audio slots name their speaker by this number in each packet's CSRC.
    socket.on('track_published', (msg) => { if (msg.source) this.sources.set(msg.source, msg.participant_id); });
    socket.on('pong', () => { this.lastPong = Date.now(); });
    socket.on('media_closed', (msg) => this.rebuildMedia(`media closed (${msg.reason})`));
    socket.on('error', (msg) => this.serially(async () => this.onServerError(msg)));
    socket.onClose((ev) => this.onSocketClosed(socket, ev));
    socket.opened.then(() => {
      this.lastPong = Date.now();
      socket.send({ type: 'join' });
      this.startHeartbeat(socket);
    }, () => {});
  }

  /** @param {RoomSocket} socket */
  startHeartbeat(socket) {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (socket !== this.socket) return;
      if (Date.now() - this.lastPong > 2 * HEARTBEAT_MS + 1000) {
        // Half-open TCP (a dead Wi-Fi): the browser may not notice for minutes.
        socket.close(4000, 'no heartbeat');
        this.onSocketClosed(socket, null);
        return;
      }
      socket.send({ type: 'ping' });
    }, HEARTBEAT_MS);
  }

  /**
   * @param {RoomSocket} socket
   * @param {CloseEvent | null} ev
   */
  onSocketClosed(socket, ev) {
    if (socket !== this.socket || this.left) return;
    this.socket = null;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const code = ev?.code ?? 0;
    if (code === FINAL_CLOSE_CODES.REMOVED) return this.close('removed from the room');
    if (code === FINAL_CLOSE_CODES.REPLACED) return this.close('joined from another tab');
    if (code === FINAL_CLOSE_CODES.ROOM_DELETED) return this.close('the room was deleted');
    this.scheduleReconnect(ev ? `connection lost (${code})` : 'connection lost');
  }

  /** @param {string} why */
  scheduleReconnect(why) {
    if (this.left || this.reconnectTimer) return;
    this.setState('reconnecting', why);
    this.closePeerConnection();
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.reconnectAttempt);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    this.reconnectAttempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.rejoins += 1;
      this.connect();
    }, delay);
  }

  /** Media can't be saved on this socket: join again (replacing ourselves) with new media. */
  /** @param {string} why */
  rebuildMedia(why) {
    if (this.left) return;
    this.setState('reconnecting', why);
    this.closePeerConnection();
    this.rejoins += 1;
    const socket = this.socket;
    if (socket?.isOpen) {
      // `media_closed` left the call server-side; a `join` while still joined replaces us.
      socket.send({ type: 'join' });
    } else if (socket) {
      socket.close(4000, 'rejoin');
      this.onSocketClosed(socket, null);
    }
  }

  /** @param {import('./signaling.js').ServerMessage} joined */
  async onJoined(joined) {
    const rejoined = this.joinedOnce;
    this.joinedOnce = true;
    this.participantId = joined.participant_id;
    this.hooks.onJoined?.(joined, rejoined);
    this.resolveJoined?.();
    this.resolveJoined = null;
    try {
      await this.startMedia(joined);
    } catch (err) {
      this.scheduleReconnect(`media failed: ${err}`);
    }
  }

  /** @param {import('./signaling.js').ServerMessage} joined */
  async startMedia(joined) {
    this.closePeerConnection();
    this.setState(this.rejoins > 0 ? 'reconnecting' : 'connecting', 'media');
    const pc = new RTCPeerConnection({ iceServers: joined.ice_servers ?? [] });
    this.pc = pc;
    this.turnExpiresAt = turnExpiry(joined.ice_servers ?? []);
    this.restartPending = false;
    this.restartSince = null;
    pc.addEventListener('icecandidate', (ev) => {
      if (ev.candidate && pc === this.pc) this.socket?.send({ type: 'ice_candidate', candidate: ev.candidate.toJSON() });
    });
    pc.addEventListener('iceconnectionstatechange', () => this.onIceState(pc));
    this.watchForStalls(pc);
    pc.addEventListener('track', (ev) => {
      const stream = ev.streams[0];
      if (stream) {
        for (const track of stream.getAudioTracks()) this.trackStreams.set(track.id, stream.id);
        this.hooks.onRemoteStream?.(stream.id, stream);
      }
    });
    if (!this.mic) {
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    }
    if (pc !== this.pc) return;
    for (const track of this.mic.getAudioTracks()) pc.addTrack(track, this.mic);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.socket?.send({ type: 'offer', sdp: offer.sdp });
  }

  /** @param {RTCPeerConnection} pc */
  onIceState(pc) {
    if (pc !== this.pc) return;
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') {
      if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
      this.disconnectTimer = null;
      this.restartSince = null;
      this.reconnectAttempt = 0;
      this.setState('connected');
    } else if (state === 'disconnected') {
      this.setState('reconnecting', 'network');
      if (!this.disconnectTimer) {
        this.disconnectTimer = setTimeout(() => {
          this.disconnectTimer = null;
          if (pc === this.pc && pc.iceConnectionState === 'disconnected') this.serially(() => this.restartIce());
        }, DISCONNECTED_GRACE_MS);
      }
    } else if (state === 'failed') {
      this.setState('reconnecting', 'network');
      this.serially(() => this.restartIce());
    }
  }

  /** Restarts ICE with a new offer on the same socket; falls back to a rejoin. */
  async restartIce() {
    const pc = this.pc;
    if (!pc || this.left) return;
    const now = Date.now();
    // coturn checks a TURN credential when an allocation is made: the call's allocations
    // outlive it, but an ICE restart's new ones would be refused, leaving a relay-only
    // browser without candidates. Join again instead: `joined` brings a fresh credential.
    if (this.turnExpiresAt !== null && now > this.turnExpiresAt - TURN_EXPIRY_MARGIN_MS) {
      this.rebuildMedia('TURN credential expired');
      return;
    }
    this.restartSince ??= now;
    if (now - this.restartSince > RESTART_DEADLINE_MS) {
      this.rebuildMedia('ICE restart did not recover');
      return;
    }
    // Retry while the network is still down; each retry picks up new interfaces.
    setTimeout(() => {
      if (pc !== this.pc || this.restartSince === null) return;
      const up = pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed';
      if (up) this.restartSince = null;
      else this.serially(() => this.restartIce());
    }, 3000);
    if (!this.socket?.isOpen) return;
    if (pc.signalingState !== 'stable') {
      this.restartPending = true;
      return;
    }
    this.restartPending = false;
    this.iceRestarts += 1;
    const offer = await pc.createOffer({ iceRestart: true });
    if (pc !== this.pc || pc.signalingState !== 'stable') return;
    await pc.setLocalDescription(offer);
    this.socket?.send({ type: 'offer', sdp: offer.sdp });
  }

  /** @param {string} sdp */
  async onAnswer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') return;
    await pc.setRemoteDescription({ type: 'answer', sdp });
    if (this.restartPending) await this.restartIce();
  }

  /**
   * @param {import('./signaling.js').ServerMessage} msg
   * @returns {Promise<void> | void}
   */
  onServerError(msg) {
    const pc = this.pc;
    // Our restart offer crossed a server offer: undo it; it is retried once stable.
    if (msg.code === 'media_out_of_order' && pc?.signalingState === 'have-local-offer') {
      this.restartPending = true;
      return pc.setLocalDescription({ type: 'rollback' });
    }
    // The node that carries the room's media can't be reached (it just went down): start
    // over on a new socket, with backoff, by which time the room is placed on a live node.
    if (msg.code === 'media_unavailable' && this.socket) {
      const socket = this.socket;
      socket.close(4000, 'media unavailable');
      this.onSocketClosed(socket, null);
      return;
    }
    this.hooks.onStatus?.(`error: ${msg.code}: ${msg.message}`);
  }

  /** @param {string} sdp */
  async answerServerOffer(sdp) {
    const pc = this.pc;
    if (!pc) return;
    if (pc.signalingState === 'have-local-offer') {
      // Glare with our ICE restart: the server's offer wins, ours is retried after.
      await pc.setLocalDescription({ type: 'rollback' });
      this.restartPending = true;
    }
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.socket?.send({ type: 'answer', sdp: answer.sdp });
    if (this.restartPending) await this.restartIce();
  }

  /**
   * Restarts ICE when nothing has come from the server for MEDIA_STALL_MS while ICE still
   * says connected and we send audio (see MEDIA_STALL_MS); the `disconnected` handling covers
   * the rest.
   * @param {RTCPeerConnection} pc
   */
  watchForStalls(pc) {
    if (this.stallWatch) clearInterval(this.stallWatch);
    let lastBytes = -1;
    let changedAt = Date.now();
    const watch = setInterval(async () => {
      if (pc !== this.pc) {
        clearInterval(watch);
        return;
      }
      const up = pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed';
      const sending = pc.getSenders().some((s) => s.track?.kind === 'audio' && s.track.readyState === 'live');
      let bytes = 0;
      (await pc.getStats()).forEach((/** @type {any} */ r) => {
        if (r.type === 'candidate-pair') bytes += r.bytesReceived ?? 0;
      });
      const now = Date.now();
      if (bytes !== lastBytes || !up || !sending) {
        lastBytes = bytes;
        changedAt = now;
        return;
      }
      if (now - changedAt >= MEDIA_STALL_MS && pc === this.pc) {
        changedAt = now;
        this.stallRestarts += 1;
        console.warn(`webcall: nothing from the media server for ${MEDIA_STALL_MS} ms; restarting ICE`);
        this.serially(() => this.restartIce());
      }
    }, 500);
    this.stallWatch = watch;
  }

  closePeerConnection() {
    if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
    this.disconnectTimer = null;
    if (this.stallWatch) clearInterval(this.stallWatch);
    this.stallWatch = null;
    const pc = this.pc;
    this.pc = null;
    pc?.close();
  }

  /** @param {string} why */
  close(why) {
    this.closePeerConnection();
    this.setState('closed', why);
  }

  /**
   * Inbound audio per remote stream, from getStats().
   * @returns {Promise<InboundAudio[]>}
   */
  async inboundAudio() {
    const pc = this.pc;
    if (!pc) return [];
    /** @type {InboundAudio[]} */
    const out = [];
    for (const receiver of pc.getReceivers()) {
      const transceiver = pc.getTransceivers().find((t) => t.receiver === receiver);
      if (!transceiver || transceiver.currentDirection === 'inactive' || transceiver.currentDirection === 'sendonly') continue;
      const stats = await receiver.getStats();
      stats.forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'audio') {
          out.push({
            streamId: this.streamOf(receiver.track.id),
            packets: report.packetsReceived ?? 0,
            energy: report.totalAudioEnergy ?? 0,
            level: report.audioLevel ?? 0,
          });
        }
      });
    }
    return out;
  }

  /**
   * In a large room, whom each audio slot (stream `slot<i>`) carries now: the speaker its
   * latest packet's CSRC names (getContributingSources(), in step with the audio played).
   * `age`: ms since that packet's audio was played; `participantId` null when unknown.
   *
   * The age is the younger of two readings: the browser's own timestamp, and the time since
   * this page last saw that timestamp move. Firefox's timestamps can trail the page's clock by
   * seconds (its audio clock runs behind on a loaded machine) while still moving as the audio
   * plays; the second reading is right there, the first everywhere else, including the first
   * look at a slot.
   * @returns {{streamId: string, participantId: number | null, source: number, age: number}[]}
   */
  slotSpeakers() {
    const pc = this.pc;
    if (!pc) return [];
    const now = performance.timeOrigin + performance.now();
    /** @type {{streamId: string, participantId: number | null, source: number, age: number}[]} */
    const out = [];
    for (const receiver of pc.getReceivers()) {
      const streamId = this.streamOf(receiver.track.id);
      if (!streamId.startsWith('slot')) continue;
      /** @type {RTCRtpContributingSource | null} */
      let latest = null;
      for (const c of receiver.getContributingSources()) if (!latest || c.timestamp > latest.timestamp) latest = c;
      if (!latest) {
        out.push({ streamId, participantId: null, source: 0, age: Infinity });
        continue;
      }
      const seen = this.slotsSeen.get(streamId);
      const changed = seen && (seen.source !== latest.source || seen.timestamp !== latest.timestamp);
      const changedAt = !seen ? -Infinity : changed ? now : seen.changedAt;
      this.slotsSeen.set(streamId, { source: latest.source, timestamp: latest.timestamp, changedAt });
      const age = Math.min(now - latest.timestamp, now - changedAt);
      out.push({ streamId, participantId: this.sources.get(latest.source) ?? null, source: latest.source, age });
    }
    return out;
  }

  /** @param {string} trackId */
  streamOf(trackId) {
    return this.trackStreams.get(trackId) ?? trackId;
  }

  /** The local UDP ports of every ICE candidate this page gathered (tests block them to cut its network). */
  async localMediaPorts() {
    const pc = this.pc;
    if (!pc) return [];
    const stats = await pc.getStats();
    /** @type {Set<number>} */
    const ports = new Set();
    stats.forEach((r) => {
      if (r.type === 'local-candidate' && r.protocol === 'udp' && r.port) ports.add(r.port);
    });
    return [...ports];
  }

  leave() {
    this.left = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.socket?.send({ type: 'leave' });
    this.closePeerConnection();
    this.socket?.close();
    this.socket = null;
    this.setState('closed', 'left');
  }
}
