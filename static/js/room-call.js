// @ts-check
// The room page's call state on top of `Call` (call.js): participants, speaking and the
// active speaker (batched to at most 10 updates a second), mute, moderation, microphone
// choice, the connection state, and the room-socket events the chat and the agent need.
// No DOM: the view gets callbacks.

import { Call } from './call.js';

/**
 * @typedef {import('./signaling.js').ServerMessage} ServerMessage
 * @typedef {{participant_id: number, user_id: number, username: string, role: string, muted: boolean,
 *   mute_locked: boolean, speaking: boolean}} Participant
 * @typedef {'idle' | 'connecting' | 'connected' | 'reconnecting' | 'removed' | 'deleted' | 'replaced' | 'closed' | 'failed'} CallState
 * @typedef {{
 *   onParticipants: () => void,
 *   onSpeaking: (changed: number[]) => void,
 *   onState: (state: CallState, detail?: string) => void,
 *   onRemoteStream: (streamId: string, stream: MediaStream) => void,
 *   onStreamGone: (streamId: string) => void,
 *   onRejoined: () => void,
 *   onMessage: (msg: ServerMessage) => void,
 *   onNotice: (code: string, msg: ServerMessage) => void,
 * }} RoomCallHooks
 */

/** How often speaking changes reach the view at most (ms). */
const SPEAKING_FLUSH_MS = 100;

export class RoomCall {
  /**
   * @param {number} roomId
   * @param {() => string | null} getToken
   * @param {number} myUserId
   * @param {RoomCallHooks} hooks
   */
  constructor(roomId, getToken, myUserId, hooks) {
    this.roomId = roomId;
    this.getToken = getToken;
    this.myUserId = myUserId;
    this.hooks = hooks;
    /** @type {Call | null} */
    this.call = null;
    /** @type {Map<number, Participant>} */
    this.participants = new Map();
    /** @type {number | null} */
    this.activeSpeaker = null;
    /** @type {number | null} */
    this.me = null;
    /** @type {CallState} */
    this.state = 'idle';
    this.joinedOnce = false;
    this.selfHealing = false;
    this.leaving = false;
    this.attempt = 0;
    /** @type {string | null} */
    this.deviceId = null;
    /** @type {Set<number>} */
    this.speakingDirty = new Set();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.flushTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
  }

  /** @returns {Participant | undefined} */
  get self() { return this.me === null ? undefined : this.participants.get(this.me); }

  /** Joins the call (asks for the microphone). */
  async join() {
    if (this.call) {
      // A call that ended by itself (replaced, failed): release its microphone first.
      this.stopMedia();
      try { this.call.leave(); } catch { /* its socket is gone */ }
      this.call = null;
    }
    this.leaving = false;
    this.setState('connecting');
    // Ask for the microphone first: a refusal (or no microphone at all) is said plainly here
    // instead of ending as a call that never connects.
    try {
      const probe = await navigator.mediaDevices.getUserMedia({ audio: true });
      for (const track of probe.getTracks()) track.stop();
    } catch {
      this.setState('failed', 'microphone');
      return;
    }
    if (this.leaving) return;
    this.open();
  }

  open() {
    const token = this.getToken();
    if (!token) {
      this.setState('closed');
      return;
    }
    /** @type {ConstructorParameters<typeof Call>[2] & Record<string, unknown>} */
    const hooks = {
      onMessage: (msg) => this.handle(msg),
      onStatus: (text) => { if (!this.selfHealing) this.onCallStatus(text); },
      onRemoteStream: (id, stream) => {
        const call = this.call;
        if (call) for (const track of stream.getAudioTracks()) call.trackStreams.set(track.id, id);
        this.hooks.onRemoteStream(id, stream);
      },
      // A Call that heals itself (ICE restart, rejoin) reports its state through this hook.
      onState: (/** @type {string} */ state, /** @type {string} */ detail) => this.onCallState(state, detail),
    };
    const call = new Call(this.roomId, token, hooks);
    this.call = call;
    // Self-healing Calls count their rejoins; an older Call only reports the ICE state, and
    // then this page reopens a dropped call itself.
    this.selfHealing = 'rejoins' in call;
    if (!this.selfHealing) {
      const socket = call.socket;
      socket?.ws.addEventListener('close', (ev) => this.onSocketClosed(call, socket, ev));
    }
    call.join().catch(() => { /* reported by the state hooks */ });
  }

  /**
   * The state of a self-healing Call.
   * @param {string} state `connecting`, `connected`, `reconnecting` or `closed`
   * @param {string} detail why (`removed from the room`, `left`, …)
   */
  onCallState(state, detail) {
    if (this.leaving) return;
    if (state === 'connected') this.setState('connected');
    else if (state === 'connecting') { if (this.state !== 'reconnecting') this.setState('connecting'); }
    else if (state === 'reconnecting') this.setState('reconnecting', detail);
    else if (state === 'closed') {
      if (/removed/.test(detail)) this.setState('removed');
      else if (/deleted/.test(detail)) this.setState('deleted');
      else if (/another tab/.test(detail)) this.setState('replaced');
      else if (detail !== 'left') this.setState('failed', detail);
    }
  }

  /**
   * An older Call's socket closed: reopen the call with backoff (1, 2, 4 … 15 s).
   * @param {Call} call
   * @param {import('./signaling.js').RoomSocket} socket
   * @param {CloseEvent} ev
   */
  onSocketClosed(call, socket, ev) {
    if (this.call !== call || this.leaving) return;
    if (ev.code === 4003) {
      this.setState('removed');
      return;
    }
    if (ev.code === 4004) {
      this.setState('deleted');
      return;
    }
    if (ev.code === 4001) {
      this.setState('replaced');
      return;
    }
    this.setState('reconnecting');
    const delay = Math.min(15_000, 1000 * 2 ** this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      if (this.call !== call || this.leaving) return;
      if (call.socket !== socket || this.state === 'connected') return;
      try { call.pc?.close(); } catch { /* already closed */ }
      for (const p of this.participants.values()) this.hooks.onStreamGone(`p${p.participant_id}`);
      this.open();
    }, delay);
  }

  /** @param {string} text */
  onCallStatus(text) {
    if (this.leaving) return;
    // Errors also arrive as `error` messages (handled there).
    if (text.startsWith('error')) return;
    if (text === 'connected') {
      this.attempt = 0;
      this.setState('connected');
    } else if (text === 'connecting' || text === 'new') {
      if (this.state !== 'reconnecting') this.setState('connecting');
    } else if (text === 'disconnected' || text === 'reconnecting' || text === 'failed') {
      this.setState('reconnecting');
    }
  }

  /** @param {CallState} state @param {string} [detail] */
  setState(state, detail) {
    if (this.state === state && !detail) return;
    this.state = state;
    this.hooks.onState(state, detail);
  }

  /** @param {ServerMessage} msg */
  handle(msg) {
    switch (msg.type) {
      case 'joined': {
        this.me = msg.participant_id;
        this.participants.clear();
        for (const p of msg.participants) this.participants.set(p.participant_id, { ...p, mute_locked: Boolean(p.mute_locked), speaking: false });
        this.activeSpeaker = null;
        this.hooks.onParticipants();
        if (this.joinedOnce) this.hooks.onRejoined();
        this.joinedOnce = true;
        if (this.deviceId) void this.useMicrophone(this.deviceId);
        break;
      }
      case 'participant_joined':
        this.participants.set(msg.participant.participant_id, { ...msg.participant, mute_locked: Boolean(msg.participant.mute_locked), speaking: false });
        this.hooks.onParticipants();
        break;
      case 'participant_left':
        this.participants.delete(msg.participant_id);
        if (this.activeSpeaker === msg.participant_id) this.activeSpeaker = null;
        this.hooks.onStreamGone(`p${msg.participant_id}`);
        this.hooks.onParticipants();
        break;
      case 'mute_changed': {
        const p = this.participants.get(msg.participant_id);
        if (p) {
          p.muted = msg.muted;
          p.mute_locked = msg.mute_locked;
          if (msg.muted) p.speaking = false;
        }
        if (msg.participant_id === this.me) this.applyLocalMute(msg.muted);
        this.hooks.onParticipants();
        break;
      }
      case 'role_changed':
        for (const p of this.participants.values()) if (p.user_id === msg.user_id) p.role = msg.role;
        this.hooks.onParticipants();
        break;
      case 'room_deleted':
        this.leaving = true;
        this.stopMedia();
        this.setState('deleted');
        break;
      case 'member_removed':
        if (msg.user_id === this.myUserId) {
          this.leaving = true;
          this.stopMedia();
          this.setState('removed');
        } else {
          for (const [id, p] of this.participants) if (p.user_id === msg.user_id) this.participants.delete(id);
          this.hooks.onParticipants();
        }
        break;
      case 'speaking': {
        const p = this.participants.get(msg.participant_id);
        if (p && p.speaking !== msg.speaking) {
          p.speaking = msg.speaking;
          this.markSpeaking(msg.participant_id);
        }
        break;
      }
      case 'active_speaker': {
        const prev = this.activeSpeaker;
        this.activeSpeaker = msg.participant_id;
        if (prev !== null) this.markSpeaking(prev);
        this.markSpeaking(msg.participant_id);
        break;
      }
      case 'track_unpublished':
        this.hooks.onStreamGone(`p${msg.participant_id}`);
        break;
      case 'media_closed':
        this.setState('reconnecting');
        break;
      case 'error':
        this.hooks.onNotice(msg.code, msg);
        break;
      default:
        break;
    }
    this.hooks.onMessage(msg);
  }

  /** @param {number} pid */
  markSpeaking(pid) {
    this.speakingDirty.add(pid);
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      const changed = [...this.speakingDirty];
      this.speakingDirty.clear();
      this.hooks.onSpeaking(changed);
    }, SPEAKING_FLUSH_MS);
  }

  /** @param {Record<string, unknown>} msg */
  send(msg) {
    const socket = this.call?.socket;
    if (!socket || socket.ws.readyState !== WebSocket.OPEN) return false;
    socket.send(msg);
    return true;
  }

  /** Mutes or unmutes yourself; the server enforces it (and may refuse: `mute_locked`). */
  /** @param {boolean} muted */
  setMuted(muted) {
    if (muted) this.applyLocalMute(true);
    this.send({ type: muted ? 'mute' : 'unmute', request_id: muted ? 'mute' : 'unmute' });
  }

  /** @param {boolean} muted */
  applyLocalMute(muted) {
    for (const sender of this.call?.pc?.getSenders() ?? []) {
      if (sender.track?.kind === 'audio') sender.track.enabled = !muted;
    }
  }

  /** @param {number} pid */
  muteParticipant(pid) { this.send({ type: 'mute', participant_id: pid }); }
  /** @param {number} pid */
  requestUnmute(pid) { this.send({ type: 'request_unmute', participant_id: pid }); }
  /** @param {number} userId */
  removeUser(userId) { this.send({ type: 'remove', user_id: userId }); }
  /** @param {string} [language] the room's language (ISO 639-1); omitted: detected per speaker */
  startTranscription(language) {
    return this.send({ type: 'transcription_start', request_id: 'ts', ...(language ? { language } : {}) });
  }
  stopTranscription() { return this.send({ type: 'transcription_stop', request_id: 'tx' }); }

  /**
   * Switches the microphone: a new track replaces the old one in the sender, without
   * renegotiation.
   * @param {string} deviceId
   */
  async useMicrophone(deviceId) {
    this.deviceId = deviceId;
    const pc = this.call?.pc;
    const sender = pc?.getSenders().find((s) => s.track?.kind === 'audio');
    if (!sender) return;
    if (sender.track?.getSettings().deviceId === deviceId) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { deviceId: { exact: deviceId }, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const track = stream.getAudioTracks()[0];
    const old = sender.track;
    track.enabled = !(this.self?.muted ?? false);
    await sender.replaceTrack(track);
    old?.stop();
    // A Call that keeps its microphone stream for rejoins gets the new one.
    const call = /** @type {any} */ (this.call);
    if (call && 'mic' in call) call.mic = stream;
  }

  stopMedia() {
    for (const sender of this.call?.pc?.getSenders() ?? []) sender.track?.stop();
    const mic = /** @type {any} */ (this.call)?.mic;
    if (mic instanceof MediaStream) for (const track of mic.getTracks()) track.stop();
    try { this.call?.pc?.close(); } catch { /* closed */ }
  }

  leave() {
    this.leaving = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    const call = this.call;
    if (call) {
      this.stopMedia();
      try { call.leave(); } catch { /* socket gone */ }
    }
    this.call = null;
    this.participants.clear();
    this.me = null;
    this.setState('idle');
  }
}
