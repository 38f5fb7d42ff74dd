// @ts-check
// Direct messages: the conversation list (unread badges, online dots) and one conversation
// (encrypted when both sides have a key, with fingerprints to compare, read receipts). A peer
// key this browser has not accepted is never encrypted to without asking, and messages that
// came with one are marked (docs/e2ee.md, "Keys the browser remembers").

import { ApiError } from '../api.js';
import { MAX_CHARS, charCount } from '../chat.js';
import { KeyCheckError } from '../dm.js';
import { currentLang, t } from '../i18n.js';
import { field, formatTime, h, icon, linkify, newId, replace, setFieldError } from './dom.js';
import { errorText } from './errors.js';

/**
 * @param {import('./shell.js').AppContext} ctx
 * @param {string | null} peer
 * @returns {import('./shell.js').View}
 */
export function renderDms(ctx, peer) {
  const lang = currentLang();
  const me = /** @type {import('../api.js').User} */ (ctx.session.user);
  const heading = h('h1', { tabindex: '-1', text: peer ? t('dm_with', { name: peer }) : t('messages_title') });
  const convList = h('ul', { class: 'conv-list', 'aria-label': t('conversations') });
  const emptyNote = h('p', { class: 'muted', hidden: true, text: t('no_conversations') });

  const newName = field({ name: 'username', label: t('write_to'), required: true, maxlength: 32 });
  const newForm = h('form', { class: 'inline-form', novalidate: true }, [newName.row, h('button', { type: 'submit', text: t('open_conversation') })]);
  newForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = newName.input.value.trim();
    if (!/^[A-Za-z0-9_.-]{3,32}$/.test(name)) { setFieldError(newName, t('err_field_username')); newName.input.focus(); return; }
    if (name.toLowerCase() === me.username.toLowerCase()) { setFieldError(newName, t('err_dm_to_self')); newName.input.focus(); return; }
    ctx.router.navigate(`/dm/${encodeURIComponent(name)}`);
  });

  function renderList() {
    const convs = ctx.dm.conversations;
    emptyNote.hidden = convs.length > 0;
    replace(convList, ...convs.map((c) => {
      const current = peer !== null && c.username.toLowerCase() === peer.toLowerCase();
      const a = h('a', { href: `/dm/${encodeURIComponent(c.username)}`, class: 'conv', 'aria-current': current ? 'page' : null }, [
        h('span', { class: `dot ${c.online ? 'dot-online' : 'dot-offline'}`, 'aria-hidden': 'true' }),
        h('span', { class: 'conv-name', text: c.username }),
        h('span', { class: 'visually-hidden', text: c.online ? `, ${t('status_online')}` : `, ${t('status_offline')}` }),
        c.unread ? h('span', { class: 'badge', text: String(c.unread) }) : null,
        c.unread ? h('span', { class: 'visually-hidden', text: `, ${t('unread_n', { n: c.unread })}` }) : null,
      ]);
      return h('li', {}, [a]);
    }));
  }
  const offList = ctx.dm.onList(renderList);
  renderList();
  void ctx.dm.refresh();
  // Online dots: presence isn't pushed on the user socket, so the list is refreshed.
  const listTimer = setInterval(() => { void ctx.dm.refresh(); }, 15_000);

  const aside = h('section', { class: 'conv-panel card', 'aria-label': t('conversations') }, [
    h('h2', { class: 'section-title', text: t('conversations') }), emptyNote, convList, newForm,
  ]);

  /** @type {Array<() => void>} */
  const cleanups = [offList, () => clearInterval(listTimer)];
  let thread = h('section', { class: 'thread card' }, [h('p', { class: 'muted', text: t('pick_conversation') })]);

  if (peer) {
    const peerName = peer;
    const security = h('div', { class: 'security' }, [h('span', { class: 'muted', text: t('checking_encryption') })]);
    // Messages that came with a key of the peer this browser had not accepted.
    const keyNotice = h('div', { class: 'banner key-notice', role: 'status', hidden: true });
    /** @type {Set<string>} */
    const newKeys = new Set();
    // Before the form: the question asked before anything is encrypted to a changed key.
    const keyPrompt = h('div', { class: 'banner key-prompt', hidden: true });
    // The fingerprint of a changed key the user chose not to send to, so as not to ask again unasked.
    let dismissed = '';
    const list = h('ol', { class: 'chat-list dm-list', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('dm_with', { name: peerName }) });
    const olderButton = h('button', { type: 'button', class: 'link-button', hidden: true, text: t('load_older') });
    const inputId = newId('dm');
    const input = h('textarea', { id: inputId, rows: '2', 'aria-describedby': `${inputId}-count ${inputId}-error` });
    const counter = h('span', { id: `${inputId}-count`, class: 'counter', text: `0 / ${MAX_CHARS}` });
    const error = h('p', { id: `${inputId}-error`, class: 'field-error', hidden: true });
    const send = h('button', { type: 'submit', class: 'primary', text: t('send') });
    const form = h('form', { class: 'chat-form', novalidate: true }, [
      h('label', { for: inputId, class: 'visually-hidden', text: t('message') }), input,
      h('div', { class: 'chat-form-row' }, [counter, send]), error,
    ]);
    thread = h('section', { class: 'thread card', 'aria-labelledby': `${inputId}-h` }, [
      h('a', { href: '/dm', class: 'back-to-list', text: `← ${t('conversations')}` }),
      h('h2', { id: `${inputId}-h`, class: 'section-title', text: peerName }), security, keyNotice, olderButton, list, keyPrompt, form,
    ]);
    /** @type {Set<number>} */
    const seen = new Set();
    let oldest = 0;
    let readUpTo = 0;

    /** @param {import('../dm.js').Shown} s */
    function item(s) {
      const mine = s.msg.sender.toLowerCase() === me.username.toLowerCase();
      const li = h('li', { class: mine ? 'msg mine' : 'msg', 'data-id': String(s.msg.id) }, [
        h('div', { class: 'msg-head' }, [
          h('span', { class: 'msg-author', text: s.msg.sender }),
          h('time', { class: 'msg-time', datetime: s.msg.created_at, text: formatTime(s.msg.created_at, lang) }),
          s.newKey ? h('span', { class: 'tag warn new-key', title: t('new_key_title', { name: peerName }), text: t('new_key') })
            : s.encrypted ? h('span', { class: 'lock', title: t('encrypted') }, [icon('lock'), h('span', { class: 'visually-hidden', text: t('encrypted') })])
              : h('span', { class: 'tag warn', text: t('not_encrypted') }),
          mine ? h('span', { class: 'receipt', text: s.msg.read_at ? t('read') : t('delivered') }) : null,
        ]),
        s.failed ? h('p', { class: 'msg-text undecryptable', text: t('cannot_decrypt') }) : h('p', { class: 'msg-text' }, linkify(s.text ?? '')),
      ]);
      return li;
    }

    /** @param {import('../dm.js').Shown} s */
    function add(s) {
      if (seen.has(s.msg.id)) return;
      seen.add(s.msg.id);
      if (s.newKey && !newKeys.has(s.newKey)) {
        newKeys.add(s.newKey);
        replace(keyNotice, h('p', { text: t('new_key_notice', { name: peerName }) }),
          h('ul', { class: 'fingerprints' }, [...newKeys].map((fp) => h('li', {}, [h('code', { text: fp })]))));
        keyNotice.hidden = false;
      }
      if (!oldest || s.msg.id < oldest) oldest = s.msg.id;
      let before = null;
      for (let c = list.lastElementChild; c; c = c.previousElementSibling) {
        if (Number(c.getAttribute('data-id')) > s.msg.id) before = c; else break;
      }
      list.insertBefore(item(s), before);
      list.scrollTop = list.scrollHeight;
    }

    /** @param {number} upTo */
    function markRead(upTo) {
      readUpTo = Math.max(readUpTo, upTo);
      for (const li of list.querySelectorAll('li.mine')) {
        if (Number(li.getAttribute('data-id')) <= readUpTo) {
          const r = li.querySelector('.receipt');
          if (r) r.textContent = t('read');
        }
      }
    }

    /** Shows the thread afresh (after a key is accepted, its messages are no longer marked). */
    function reload() {
      seen.clear();
      newKeys.clear();
      oldest = 0;
      replace(list);
      replace(keyNotice);
      keyNotice.hidden = true;
      void load();
    }

    /**
     * The changed key, both fingerprints, and what the user can do: trust the new key (and
     * send `text`, when sending is what found the change), or not.
     * @param {import('../dm.js').KeyCheck & {state: 'changed'}} check
     * @param {string | null} text the message waiting to be sent
     */
    function askAboutKey(check, text) {
      const trust = h('button', { type: 'button', class: text === null ? null : 'primary', text: text === null ? t('trust_key') : t('trust_and_send') });
      trust.addEventListener('click', () => {
        ctx.dm.accept(peerName, check.key);
        keyPrompt.hidden = true;
        replace(keyPrompt);
        reload();
        void loadSecurity();
        if (text !== null) void submit(text);
        else input.focus();
      });
      const cancel = text === null ? null : h('button', { type: 'button', text: t('dont_send') });
      cancel?.addEventListener('click', () => {
        dismissed = check.fp;
        keyPrompt.hidden = true;
        replace(keyPrompt);
        input.focus();
      });
      const said = h('p', { role: 'alert', tabindex: '-1', text: text === null ? t('key_changed', { name: peerName }) : t('key_changed_send', { name: peerName }) });
      replace(keyPrompt, said,
        h('dl', { class: 'fingerprints' }, [
          h('dt', { text: t('key_before') }), h('dd', {}, [h('code', { class: 'fp-before', text: check.fromFp })]),
          h('dt', { text: t('key_now') }), h('dd', {}, [h('code', { class: 'fp-now', text: check.fp })]),
        ]),
        h('p', { text: t('fingerprint_help', { name: peerName }) }),
        h('div', { class: 'button-row' }, [trust, cancel]));
      keyPrompt.hidden = false;
      if (text !== null) said.focus();
    }

    async function load() {
      try {
        const { messages, hasMore } = await ctx.dm.open(peerName, { onMessage: add, onRead: markRead, onReload: () => { void load(); } });
        for (const m of messages) add(m);
        olderButton.hidden = !hasMore;
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          replace(security, h('p', { class: 'form-error', role: 'alert', text: t('err_no_such_user') }));
          form.hidden = true;
        } else {
          ctx.notify(errorText(err), 'error');
        }
      }
    }

    async function loadSecurity() {
      try {
        const { check, mine } = await ctx.dm.security(peerName);
        if (check.state === 'ok' && mine) {
          replace(security,
            h('p', { class: 'enc-on' }, [icon('lock'), ' ', t('e2ee_on')]),
            h('details', {}, [
              h('summary', { text: t('compare_fingerprints') }),
              h('p', { text: t('fingerprint_help', { name: peerName }) }),
              h('dl', { class: 'fingerprints' }, [
                h('dt', { text: t('your_key') }), h('dd', {}, [h('code', { text: mine })]),
                h('dt', { text: t('their_key', { name: peerName }) }), h('dd', {}, [h('code', { text: check.fp })]),
              ]),
            ]));
        } else if (check.state === 'changed') {
          replace(security, h('p', { class: 'enc-off' }, [icon('unlock'), ' ', t('key_unconfirmed')]));
          // A question already asked for a message waiting to be sent stays as it is.
          if (keyPrompt.hidden && dismissed !== check.fp) askAboutKey(check, null);
        } else if (check.state === 'gone') {
          replace(security, h('p', { class: 'banner key-gone', role: 'alert', text: t('key_gone', { name: peerName }) }));
        } else if (check.state === 'plain') {
          replace(security, h('p', { class: 'enc-off' }, [icon('unlock'), ' ', t('e2ee_off', { name: peerName })]));
        } else {
          replace(security, h('p', { class: 'enc-off', text: t('e2ee_unknown') }));
        }
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return;
        replace(security, h('p', { class: 'enc-off', text: t('e2ee_unknown') }));
      }
    }

    olderButton.addEventListener('click', async () => {
      try {
        const { messages, hasMore } = await ctx.dm.older(peerName, oldest);
        for (const m of messages) add(m);
        olderButton.hidden = !hasMore;
      } catch (err) { ctx.notify(errorText(err), 'error'); }
    });

    function updateCounter() {
      const n = charCount(input.value);
      counter.textContent = `${n} / ${MAX_CHARS}`;
      counter.classList.toggle('over', n > MAX_CHARS);
      setFieldError({ input, error }, n > MAX_CHARS ? t('err_too_long', { n: n - MAX_CHARS }) : '');
    }
    input.addEventListener('input', updateCounter);
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); form.requestSubmit(); }
    });
    /**
     * Sends `text`; nothing leaves the browser when the peer's key is not the accepted one
     * (the question is asked instead) or the server lists none although one was known.
     * @param {string} text
     */
    async function submit(text) {
      send.disabled = true;
      try {
        const shown = await ctx.dm.send(peerName, text);
        if (input.value === text) input.value = '';
        updateCounter();
        add(shown);
        void loadSecurity();
      } catch (err) {
        if (err instanceof KeyCheckError && err.check.state === 'changed') {
          askAboutKey(err.check, text);
          void loadSecurity();
        } else if (err instanceof KeyCheckError) {
          setFieldError({ input, error }, t('not_sent_key_gone', { name: peerName }));
          void loadSecurity();
        } else {
          setFieldError({ input, error }, errorText(err));
        }
      } finally {
        send.disabled = false;
      }
    }

    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = input.value;
      if (!text.trim() || charCount(text) > MAX_CHARS) return;
      void submit(text);
    });

    void load().then(loadSecurity);
    cleanups.push(() => ctx.dm.close(peerName));
  }

  // On a phone an open conversation takes the screen; the list is one tap back.
  const el = h('section', { class: 'page' }, [heading, h('div', { class: peer ? 'dm-layout has-thread' : 'dm-layout' }, [aside, thread])]);
  return {
    el, title: peer ? t('dm_with', { name: peer }) : t('messages_title'), focus: heading,
    dispose: () => { for (const fn of cleanups) fn(); },
  };
}
