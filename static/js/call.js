// @ts-check
// One call: the room socket plus one RTCPeerConnection to the SFU. The client offers once
// (its microphone); after that only the server offers, when participants come and go. No DOM.

import { RoomSocket } from './signaling.js';

/**
 * @typedef {{streamId: string, packets: number, energy: number, level: number}} InboundAudio
 */

export class Call {
  /**
   * @param {number} roomId
   * @param {string} token
   * @param {{onRemoteStream?: (id: string, stream: MediaStream) => void,
   *          onStatus?: (text: string) => void,
   *          onMessage?: (msg: import('./signaling.js').ServerMessage) => void}} [hooks]
   */
  constructor(roomId, token, hooks = {}) {
    this.socket = new RoomSocket(roomId, token);
    this.hooks = hooks;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {number | null} */
    this.participantId = null;
    this.socket.on('*', (msg) => this.hooks.onMessage?.(msg));
    this.socket.on('joined', (msg) => { void this.startMedia(msg); });
    this.socket.on('answer', (msg) => { void this.pc?.setRemoteDescription({ type: 'answer', sdp: msg.sdp }); });
    this.socket.on('offer', (msg) => { void this.answerServerOffer(msg.sdp); });
    this.socket.on('error', (msg) => this.hooks.onStatus?.(`error: ${msg.code}: ${msg.message}`));
  }

  async join() {
    await this.socket.opened;
    this.socket.send({ type: 'join' });
  }

  /** @param {import('./signaling.js').ServerMessage} joined */
  async startMedia(joined) {
    this.participantId = joined.participant_id;
    const pc = new RTCPeerConnection({ iceServers: joined.ice_servers ?? [] });
    this.pc = pc;
    pc.addEventListener('icecandidate', (ev) => {
      if (ev.candidate) this.socket.send({ type: 'ice_candidate', candidate: ev.candidate.toJSON() });
    });
    pc.addEventListener('connectionstatechange', () => this.hooks.onStatus?.(pc.connectionState));
    pc.addEventListener('track', (ev) => {
      const stream = ev.streams[0];
      if (stream) this.hooks.onRemoteStream?.(stream.id, stream);
    });
    const mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.socket.send({ type: 'offer', sdp: offer.sdp });
  }

  /** @param {string} sdp */
  async answerServerOffer(sdp) {
    const pc = this.pc;
    if (!pc) return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.socket.send({ type: 'answer', sdp: answer.sdp });
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

  /** @type {Map<string, string>} */
  trackStreams = new Map();

  /** @param {string} trackId */
  streamOf(trackId) {
    return this.trackStreams.get(trackId) ?? trackId;
  }

  leave() {
    this.socket.send({ type: 'leave' });
    this.pc?.close();
    this.socket.close();
  }
}
