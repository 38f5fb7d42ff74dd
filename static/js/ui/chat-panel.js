// @ts-check
// The room's chat panel: history with "load older", live messages in id order, pending
// sends, the 4000-character limit shown while typing, links only for http(s).

import { ApiError } from '../api.js';
import { ChatStore, MAX_CHARS, charCount } from '../chat.js';
import { currentLang, t } from '../i18n.js';
import { formatTime, h, linkify, newId, setFieldError } from './dom.js';
import { errorText } from './errors.js';

/**
 * @typedef {{
 *   section: HTMLElement,
 *   store: ChatStore,
 *   load: () => Promise<void>,
 *   catchUp: () => Promise<void>,
 *   close: () => void,
 *   onUnseen: (fn: (n: number) => void) => void,
 *   seen: () => void,
 * }} ChatPanel
 */

/**
 * @param {import('./shell.js').AppContext} ctx
 * @param {number} roomId
 * @param {{onGone: () => void}} hooks `onGone`: the room answered 404 (deleted, or removed)
 * @returns {ChatPanel}
 */
export function createChatPanel(ctx, roomId, hooks) {
  const me = /** @type {import('../api.js').User} */ (ctx.session.user);
  const lang = currentLang();
  const list = h('ol', { class: 'chat-list', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('chat_messages') });
  const olderButton = h('button', { type: 'button', class: 'link-button', hidden: true, text: t('load_older') });
  const empty = h('p', { class: 'muted', hidden: true, text: t('no_messages') });
  const inputId = newId('chat');
  const input = h('textarea', { id: inputId, name: 'text', rows: '2', 'aria-describedby': `${inputId}-count ${inputId}-error` });
  const counter = h('span', { id: `${inputId}-count`, class: 'counter', text: `0 / ${MAX_CHARS}` });
  const error = h('p', { id: `${inputId}-error`, class: 'field-error', hidden: true });
  const sendButton = h('button', { type: 'submit', class: 'primary', text: t('send') });
  const form = h('form', { class: 'chat-form', novalidate: true }, [
    h('label', { for: inputId, class: 'visually-hidden', text: t('message') }),
    input,
    h('div', { class: 'chat-form-row' }, [counter, sendButton]),
    error,
  ]);
  const section = h('section', { class: 'chat card' }, [
    h('h2', { class: 'section-title', text: t('chat') }),
    olderButton, empty, list, form,
  ]);
  const inputRef = { input, error };

  /** New messages from others while the panel is hidden. */
  let unseen = 0;
  /** @type {(n: number) => void} */
  let unseenListener = () => {};

  /** @type {Map<string, HTMLLIElement>} */
  const pendingEls = new Map();
  const store = new ChatStore(ctx.api, roomId, {
    onInsert: (msg) => {
      const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
      // In id order (usually the end), before any message still being sent.
      let before = null;
      for (let c = list.lastElementChild; c; c = c.previousElementSibling) {
        if (c.classList.contains('pending')) { before = c; continue; }
        if (Number(c.getAttribute('data-id')) > msg.id) before = c; else break;
      }
      list.insertBefore(messageItem(msg), before);
      empty.hidden = true;
      if (stick) list.scrollTop = list.scrollHeight;
      if (section.hidden && msg.user_id !== me.id && loaded) {
        unseen += 1;
        unseenListener(unseen);
      }
    },
    onOlder: (msgs, hasMore) => {
      const first = list.firstElementChild;
      const height = list.scrollHeight;
      for (const m of msgs) list.insertBefore(messageItem(m), first);
      list.scrollTop += list.scrollHeight - height;
      olderButton.hidden = !hasMore;
    },
    onPending: (key, text) => {
      const item = h('li', { class: 'msg mine pending' }, [
        h('div', { class: 'msg-head' }, [h('span', { class: 'msg-author', text: me.username }), h('span', { class: 'msg-time', text: t('sending') })]),
        h('p', { class: 'msg-text', text }),
      ]);
      pendingEls.set(key, item);
      list.append(item);
      list.scrollTop = list.scrollHeight;
    },
    onPendingDone: (key, failed) => {
      const item = pendingEls.get(key);
      pendingEls.delete(key);
      if (!item) return;
      if (failed === null) {
        item.remove();
        return;
      }
      item.classList.add('failed');
      const time = item.querySelector('.msg-time');
      if (time) time.textContent = t('not_sent');
    },
  });
  let loaded = false;

  /** @param {import('../api.js').ChatMessage} msg */
  function messageItem(msg) {
    return h('li', { class: msg.user_id === me.id ? 'msg mine' : 'msg', 'data-id': String(msg.id) }, [
      h('div', { class: 'msg-head' }, [
        h('span', { class: 'msg-author', text: msg.username }),
        h('time', { class: 'msg-time', datetime: msg.created_at, text: formatTime(msg.created_at, lang) }),
      ]),
      h('p', { class: 'msg-text' }, linkify(msg.text)),
    ]);
  }

  function updateCounter() {
    const n = charCount(input.value);
    counter.textContent = `${n} / ${MAX_CHARS}`;
    const over = n > MAX_CHARS;
    counter.classList.toggle('over', over);
    if (over) setFieldError(inputRef, t('err_too_long', { n: n - MAX_CHARS }));
    else if (!error.hidden) setFieldError(inputRef, '');
  }
  input.addEventListener('input', updateCounter);
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    if (charCount(text) > MAX_CHARS) {
      updateCounter();
      input.focus();
      return;
    }
    input.value = '';
    updateCounter();
    store.send(text).catch((err) => {
      setFieldError(inputRef, errorText(err));
      if (!input.value) { input.value = text; updateCounter(); }
      if (err instanceof ApiError && err.status === 404) hooks.onGone();
    });
  });
  olderButton.addEventListener('click', () => {
    void store.loadOlder().catch((err) => ctx.notify(errorText(err), 'error'));
  });

  return {
    section,
    store,
    load: async () => {
      await store.load();
      loaded = true;
      olderButton.hidden = !store.hasOlder;
      empty.hidden = store.byId.size > 0;
      list.scrollTop = list.scrollHeight;
    },
    catchUp: () => store.catchUp().catch((err) => {
      if (err instanceof ApiError && err.status === 404) hooks.onGone();
    }),
    close: () => { form.hidden = true; },
    onUnseen: (fn) => { unseenListener = fn; },
    seen: () => {
      unseen = 0;
      unseenListener(0);
      list.scrollTop = list.scrollHeight;
    },
  };
}
