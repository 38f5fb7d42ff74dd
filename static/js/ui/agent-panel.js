// @ts-check
// The room's AI agent panel: transcription on/off (and who turned it on), live captions by
// speaker (aria-live), the stored transcript, "Summarise" and the summaries with their
// Telegram delivery.

import { Agent } from '../agent.js';
import { currentLang, t } from '../i18n.js';
import { formatTime, h, linkify, replace } from './dom.js';
import { errorText } from './errors.js';

/** Captions kept on screen. */
const MAX_CAPTIONS_SHOWN = 50;
/** Languages offered for the room; "auto" detects each speaker's. Any whisper code works
 * over the protocol; these are the common ones. */
const CAPTION_LANGUAGES = ['ru', 'en', 'uk', 'de', 'fr', 'es', 'it', 'pl', 'pt', 'tr', 'zh', 'ja'];

/**
 * @typedef {{section: HTMLElement, agent: Agent, render: () => void}} AgentPanel
 */

/**
 * @param {import('./shell.js').AppContext} ctx
 * @param {number} roomId
 * @param {{inCall: () => boolean, nameOf: (userId: number) => string, start: (language?: string) => void, stop: () => void}} call
 * @returns {AgentPanel}
 */
export function createAgentPanel(ctx, roomId, call) {
  const lang = currentLang();
  const state = h('p', { class: 'agent-state', role: 'status' });
  const toggle = h('button', { type: 'button', text: t('start_transcription') });
  const summarise = h('button', { type: 'button', text: t('summarise') });
  const names = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames([lang], { type: 'language' }) : null;
  const language = h('select', { class: 'caption-language', 'aria-label': t('caption_language') }, [
    h('option', { value: '', text: t('caption_language_auto') }),
    ...CAPTION_LANGUAGES.map((code) => h('option', { value: code, text: names?.of(code) ?? code })),
  ]);
  const captions = h('ol', { class: 'captions', 'aria-live': 'polite', 'aria-label': t('live_captions') });
  // What people are saying right now, revised about once a second. Outside the live region:
  // a screen reader hears each utterance once, as its final caption.
  const speaking = h('ol', { class: 'captions caption-partials', 'aria-hidden': 'true' });
  const transcriptButton = h('button', { type: 'button', class: 'link-button', text: t('show_transcript') });
  const transcript = h('ol', { class: 'transcript', hidden: true, 'aria-label': t('transcript') });
  const summaries = h('ol', { class: 'summaries', 'aria-label': t('summaries') });
  const section = h('section', { class: 'agent card' }, [
    h('h2', { class: 'section-title', text: t('ai_agent') }),
    state,
    h('div', { class: 'button-row' }, [toggle, language, summarise]),
    h('h3', { text: t('live_captions') }), captions, speaking,
    h('h3', { text: t('transcript') }), transcriptButton, transcript,
    h('h3', { text: t('summaries') }), summaries,
  ]);

  const agent = new Agent(ctx.api, roomId, {
    onState: render,
    onCaption: (c) => {
      partialLine(c.participant_id)?.remove();
      captions.append(h('li', { class: 'caption', 'data-user': c.username, lang: c.language }, [
        h('span', { class: 'caption-who', text: `${c.username}: ` }), c.text,
      ]));
      while (captions.childElementCount > MAX_CAPTIONS_SHOWN) captions.firstElementChild?.remove();
    },
    onPartial: (p) => {
      const line = h('li', {
        class: 'caption partial', 'data-user': p.username, 'data-participant': String(p.participant_id),
        'data-revision': String(p.revision),
      }, [
        h('span', { class: 'caption-who', text: `${p.username}: ` }),
        h('span', { class: 'caption-stable', text: p.stable }),
        p.stable && p.unstable ? ' ' : '',
        h('span', { class: 'caption-unstable', text: p.unstable }),
      ]);
      const old = partialLine(p.participant_id);
      if (old) old.replaceWith(line);
      else speaking.append(line);
    },
    onSummaries: renderSummaries,
  });

  /** @param {number} participantId */
  function partialLine(participantId) {
    return speaking.querySelector(`li[data-participant="${participantId}"]`);
  }

  function render() {
    const inCall = call.inCall();
    if (!agent.active) speaking.replaceChildren();
    if (agent.active) {
      state.textContent = t('transcribing_by', { name: agent.byUserId ? call.nameOf(agent.byUserId) : '?' });
    } else {
      state.textContent = inCall ? t('not_transcribing') : t('join_to_transcribe');
    }
    state.classList.toggle('on', agent.active);
    toggle.textContent = agent.active ? t('stop_transcription') : t('start_transcription');
    toggle.setAttribute('aria-pressed', String(agent.active));
    toggle.disabled = !inCall;
    language.disabled = !inCall || agent.active;
    summarise.disabled = agent.summarising;
    summarise.textContent = agent.summarising ? t('summarising') : t('summarise');
  }

  toggle.addEventListener('click', () => {
    if (agent.active) call.stop();
    else call.start(/** @type {HTMLSelectElement} */ (language).value || undefined);
  });
  summarise.addEventListener('click', async () => {
    try {
      const outcome = await agent.summarise();
      ctx.announce(t('summary_ready'));
      if (outcome.telegram.status === 'failed') ctx.notify(t('telegram_failed'), 'error');
    } catch (err) {
      ctx.notify(errorText(err), 'error');
    }
  });
  transcriptButton.addEventListener('click', async () => {
    try {
      const segments = await agent.transcript();
      replace(transcript, ...(segments.length ? segments.map((s) => h('li', {}, [
        h('time', { datetime: s.started_at, text: formatTime(s.started_at, lang) }), ' ',
        h('strong', { text: `${s.username}: ` }), s.text,
      ])) : [h('li', { class: 'muted', text: t('no_transcript') })]));
      transcript.hidden = false;
      transcriptButton.textContent = t('refresh_transcript');
    } catch (err) {
      ctx.notify(errorText(err), 'error');
    }
  });

  /** @param {import('../api.js').Delivery | undefined} d */
  function deliveryTag(d) {
    if (!d) return null;
    const text = d.status === 'sent' ? t('telegram_sent', { n: d.chats ?? 1 })
      : d.status === 'failed' ? t('telegram_failed')
        : d.status === 'not_linked' ? t('telegram_not_linked')
          : d.status === 'repeat' ? t('telegram_repeat') : '';
    return text ? h('span', { class: d.status === 'failed' ? 'tag warn' : 'tag', text }) : null;
  }

  function renderSummaries() {
    replace(summaries, ...(agent.summaries.length ? agent.summaries.map((s) => h('li', { class: 'summary' }, [
      h('div', { class: 'msg-head' }, [
        h('strong', { text: t('summary_by', { name: s.requested_by_name }) }),
        h('time', { datetime: s.created_at, text: formatTime(s.created_at, lang) }),
        s.source === 'heuristic' ? h('span', { class: 'tag', text: t('heuristic') }) : null,
        deliveryTag(agent.deliveries.get(s.id)),
      ]),
      h('p', { class: 'summary-text' }, linkify(s.text)),
    ])) : [h('li', { class: 'muted', text: t('no_summaries') })]));
  }

  render();
  renderSummaries();
  return { section, agent, render };
}
