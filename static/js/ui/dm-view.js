// @ts-check
// Direct messages: the conversation list (unread badges, online dots) and one conversation
// (encrypted when both sides have a key, with fingerprints to compare, read receipts).

import { ApiError } from '../api.js';
import { MAX_CHARS, charCount } from '../chat.js';
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
      h('h2', { id: `${inputId}-h`, class: 'section-title', text: peerName }), security, olderButton, list, form,
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
          s.encrypted ? h('span', { class: 'lock', title: t('encrypted') }, [icon('lock'), h('span', { class: 'visually-hidden', text: t('encrypted') })])
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
        const s = await ctx.dm.security(peerName);
        if (s.encrypted) {
          replace(security,
            s.changed ? h('p', { class: 'banner', role: 'alert', text: t('key_changed', { name: peerName }) }) : null,
            h('p', { class: 'enc-on' }, [icon('lock'), ' ', t('e2ee_on')]),
            h('details', { open: s.changed }, [
              h('summary', { text: t('compare_fingerprints') }),
              h('p', { text: t('fingerprint_help', { name: peerName }) }),
              h('dl', { class: 'fingerprints' }, [
                h('dt', { text: t('your_key') }), h('dd', {}, [h('code', { text: s.mine ?? '' })]),
                h('dt', { text: t('their_key', { name: peerName }) }), h('dd', {}, [h('code', { text: s.theirs ?? '' })]),
              ]),
            ]));
        } else {
          replace(security, h('p', { class: 'enc-off' }, [icon('unlock'), ' ', t('e2ee_off', { name: peerName })]));
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
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = input.value;
      if (!text.trim() || charCount(text) > MAX_CHARS) return;
      send.disabled = true;
      try {
        const shown = await ctx.dm.send(peerName, text);
        input.value = '';
        updateCounter();
        add(shown);
        void loadSecurity();
      } catch (err) {
        setFieldError({ input, error }, errorText(err));
      } finally {
        send.disabled = false;
      }
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
