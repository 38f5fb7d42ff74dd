// @ts-check
// The room's AI agent: transcription state, live captions, the stored transcript, summaries.
// Fed with room-socket messages by the room page; talks HTTP for the rest. No DOM.

/**
 * @typedef {{participant_id: number, user_id: number, username: string, start_ms: number, end_ms: number, text: string, language?: string}} Caption
 * @typedef {{participant_id: number, user_id: number, username: string, start_ms: number, revision: number, stable: string, unstable: string}} PartialCaption
 * @typedef {{onState: () => void, onCaption: (c: Caption) => void, onPartial: (p: PartialCaption) => void, onSummaries: () => void}} AgentHooks
 */

/** Captions kept in memory for the live view. */
const MAX_CAPTIONS = 200;
/** Finals remembered so a late partial of the same utterance is ignored. */
const MAX_FINAL_KEYS = 64;

/**
 * An utterance's key: its speaker's participant and its start.
 * @param {{participant_id: number, start_ms: number}} c
 */
export function utteranceKey(c) {
  return `${c.participant_id}:${c.start_ms}`;
}

export class Agent {
  /**
   * @param {import('./api.js').Api} api
   * @param {number} roomId
   * @param {AgentHooks} hooks
   */
  constructor(api, roomId, hooks) {
    this.api = api;
    this.roomId = roomId;
    this.hooks = hooks;
    this.active = false;
    /** @type {number | null} */
    this.byUserId = null;
    /** @type {Caption[]} */
    this.captions = [];
    /** The utterance each participant is saying now, as far as it is transcribed. */
    /** @type {Map<number, PartialCaption>} */
    this.partials = new Map();
    /** @type {string[]} */
    this.finalKeys = [];
    /** @type {import('./api.js').Summary[]} */
    this.summaries = [];
    /** What happened to Telegram delivery, for the summaries this page asked for. */
    /** @type {Map<number, import('./api.js').Delivery>} */
    this.deliveries = new Map();
    this.summarising = false;
  }

  /** @param {import('./signaling.js').ServerMessage} msg */
  handle(msg) {
    if (msg.type === 'transcription_state') {
      this.active = Boolean(msg.active);
      this.byUserId = msg.by_user_id ?? null;
      this.hooks.onState();
    } else if (msg.type === 'caption') {
      /** @type {Caption} */
      const c = {
        participant_id: msg.participant_id, user_id: msg.user_id, username: String(msg.username),
        start_ms: msg.start_ms, end_ms: msg.end_ms, text: String(msg.text),
        language: msg.language ?? undefined,
      };
      const partial = this.partials.get(c.participant_id);
      if (partial && partial.start_ms <= c.start_ms) this.partials.delete(c.participant_id);
      this.finalKeys.push(utteranceKey(c));
      if (this.finalKeys.length > MAX_FINAL_KEYS) this.finalKeys.shift();
      this.captions.push(c);
      if (this.captions.length > MAX_CAPTIONS) this.captions.shift();
      this.hooks.onCaption(c);
    } else if (msg.type === 'caption_partial') {
      /** @type {PartialCaption} */
      const p = {
        participant_id: msg.participant_id, user_id: msg.user_id, username: String(msg.username),
        start_ms: msg.start_ms, revision: msg.revision, stable: String(msg.stable ?? ''),
        unstable: String(msg.unstable ?? ''),
      };
      // Stale: its final is here already, or a newer revision (or utterance) is shown.
      if (this.finalKeys.includes(utteranceKey(p))) return;
      const shown = this.partials.get(p.participant_id);
      if (shown && (shown.start_ms > p.start_ms || (shown.start_ms === p.start_ms && shown.revision >= p.revision))) return;
      this.partials.set(p.participant_id, p);
      this.hooks.onPartial(p);
    } else if (msg.type === 'summary' && msg.summary) {
      this.addSummary(msg.summary);
    }
  }

  /** @param {import('./api.js').Summary} s */
  addSummary(s) {
    if (!this.summaries.some((x) => x.id === s.id)) {
      this.summaries.unshift(s);
      this.summaries.sort((a, b) => b.id - a.id);
    }
    this.hooks.onSummaries();
  }

  /** The call ended (or the page left it): the state is unknown until the next join. */
  reset() {
    this.active = false;
    this.byUserId = null;
    this.partials.clear();
    this.hooks.onState();
  }

  async loadSummaries() {
    this.summaries = await this.api.summaries(this.roomId);
    this.hooks.onSummaries();
  }

  /** @returns {Promise<import('./api.js').Segment[]>} */
  transcript() { return this.api.transcript(this.roomId); }

  /**
   * Stops the agent and writes (or returns) the session's summary.
   * @returns {Promise<import('./api.js').SummaryOutcome>}
   */
  async summarise() {
    this.summarising = true;
    this.hooks.onState();
    try {
      const outcome = await this.api.summarise(this.roomId);
      if (!this.deliveries.has(outcome.summary.id) || outcome.telegram.status !== 'repeat') {
        this.deliveries.set(outcome.summary.id, outcome.telegram);
      }
      this.addSummary(outcome.summary);
      return outcome;
    } finally {
      this.summarising = false;
      this.hooks.onState();
    }
  }
}

/**
 * What the owner, a moderator or a member may do to another member (docs/protocol.md).
 * @param {string} myRole
 * @param {string} targetRole
 * @returns {{moderate: boolean, changeRole: boolean}}
 */
export function permissions(myRole, targetRole) {
  if (myRole === 'owner') return { moderate: targetRole !== 'owner', changeRole: targetRole !== 'owner' };
  if (myRole === 'moderator') return { moderate: targetRole === 'member', changeRole: false };
  return { moderate: false, changeRole: false };
}
