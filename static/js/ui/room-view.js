// @ts-check
// The room page: the call (participant grid, mute, microphone, moderation, connection
// state) beside the chat, the members and the AI agent.

import { Agent, permissions } from '../agent.js';
import { ApiError } from '../api.js';
import { ChatStore, MAX_CHARS, charCount } from '../chat.js';
import { currentLang, roleName, t } from '../i18n.js';
import { RoomCall } from '../room-call.js';
import { field, formatTime, h, icon, linkify, newId, replace, setFieldError } from './dom.js';
import { clearFormErrors, errorText, showFormError } from './errors.js';

/**
 * The current Call as `window.webcall`, for the browser tests (they read getStats through
 * it, as they did on call.html). Nothing in the app reads it.
 * @param {RoomCall | null} roomCall
 */
function exposeCall(roomCall) {
  Object.defineProperty(window, 'webcall', { configurable: true, get: () => roomCall?.call ?? undefined });
}

/**
 * @param {import('./shell.js').AppContext} ctx
 * @param {number} roomId
 * @returns {import('./shell.js').View}
 */
export function renderRoom(ctx, roomId) {
  const me = /** @type {import('../api.js').User} */ (ctx.session.user);
  const lang = currentLang();
  const heading = h('h1', { tabindex: '-1', text: t('loading') });
  const roleBadge = h('span', { class: 'role', hidden: true });
  const banner = h('div', { class: 'banner', role: 'alert', hidden: true });
  const body = h('div', { class: 'room-layout' });
  const deleteButton = h('button', { type: 'button', class: 'danger', hidden: true, text: t('delete_room') });
  const el = h('section', { class: 'page room-page' }, [
    h('div', { class: 'room-head' }, [
      h('a', { href: '/', class: 'back', text: `← ${t('nav_rooms')}` }),
      heading, roleBadge, deleteButton,
    ]),
    banner,
    body,
  ]);

  let disposed = false;
  let removed = false;
  /** @type {import('../api.js').Room | null} */
  let room = null;
  /** @type {Array<() => void>} */
  const cleanups = [];

  /** @param {string} text */
  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = false;
  }

  // ---- call ---------------------------------------------------------------------------
  const callState = h('p', { class: 'call-state', role: 'status' }, [t('call_idle')]);
  const joinButton = h('button', { type: 'button', class: 'primary', text: t('join_call') });
  const muteButton = h('button', { type: 'button', class: 'mute-button', 'aria-pressed': 'false', hidden: true });
  const micId = newId('mic');
  const micSelect = h('select', { id: micId });
  const micRow = h('div', { class: 'mic-row', hidden: true }, [h('label', { for: micId, text: t('microphone') }), micSelect]);
  const unmutePrompt = h('div', { class: 'unmute-prompt', role: 'alert', hidden: true });
  const grid = h('ul', { class: 'grid', 'aria-label': t('participants') });
  const gridCount = h('h2', { class: 'section-title', hidden: true });
  const audioBox = h('div', { class: 'audio-box', hidden: true });
  const callSection = h('section', { class: 'call card', 'aria-label': t('call') }, [
    h('div', { class: 'call-controls' }, [joinButton, muteButton, micRow]),
    callState, unmutePrompt, gridCount, grid, audioBox,
  ]);

  /** @type {Map<number, HTMLLIElement>} */
  const tiles = new Map();
  /** @type {Map<string, HTMLAudioElement>} */
  const audios = new Map();

  const roomCall = new RoomCall(roomId, () => ctx.session.token, me.id, {
    onParticipants: renderGrid,
    onSpeaking: (changed) => {
      for (const pid of changed) updateSpeaking(pid);
    },
    onState: (state) => {
      const key = /** @type {const} */ ({
        idle: 'call_idle', connecting: 'call_connecting', connected: 'call_connected',
        reconnecting: 'call_reconnecting', removed: 'call_removed', closed: 'call_idle', failed: 'call_failed',
      })[state];
      callState.textContent = t(key);
      callState.dataset.state = state;
      const inCall = state !== 'idle' && state !== 'closed' && state !== 'removed' && state !== 'failed';
      joinButton.textContent = inCall ? t('leave_call') : t('join_call');
      joinButton.className = inCall ? 'danger' : 'primary';
      muteButton.hidden = !inCall;
      if (!inCall) {
        replace(grid);
        tiles.clear();
        gridCount.hidden = true;
        for (const a of audios.values()) a.remove();
        audios.clear();
        agent.reset();
      }
      micRow.hidden = !inCall;
      if (state === 'removed') onRemoved();
      if (state === 'connected') void fillMics();
      renderMute();
      renderAgent();
    },
    onRemoteStream: (streamId, stream) => {
      let audio = audios.get(streamId);
      if (!audio) {
        audio = h('audio', { 'data-stream': streamId });
        audios.set(streamId, audio);
        audioBox.append(audio);
      }
      audio.autoplay = true;
      audio.srcObject = stream;
      audio.play().catch(() => {
        callState.textContent = t('click_for_audio');
      });
    },
    onStreamGone: (streamId) => {
      audios.get(streamId)?.remove();
      audios.delete(streamId);
    },
    onRejoined: () => { void chat.catchUp().catch(() => {}); },
    onMessage: (msg) => onRoomMessage(msg),
    onNotice: (code) => {
      if (code === 'mute_locked') ctx.notify(t('err_mute_locked'), 'error');
      else if (code === 'transcription_unavailable') ctx.notify(t('err_transcription_unavailable'), 'error');
      else if (code === 'forbidden') ctx.notify(t('err_forbidden'), 'error');
      else if (code === 'rate_limited') ctx.notify(t('err_rate_limited'), 'error');
    },
  });

  joinButton.addEventListener('click', () => {
    if (roomCall.state === 'idle' || roomCall.state === 'closed' || roomCall.state === 'failed') {
      void roomCall.join();
      exposeCall(roomCall);
    } else {
      roomCall.leave();
    }
  });

  muteButton.addEventListener('click', () => {
    const self = roomCall.self;
    if (!self) return;
    if (self.mute_locked) {
      ctx.notify(t('err_mute_locked'), 'error');
      return;
    }
    roomCall.setMuted(!self.muted);
  });

  micSelect.addEventListener('change', () => {
    localStorage.setItem('webcall.mic', micSelect.value);
    roomCall.useMicrophone(micSelect.value).catch(() => ctx.notify(t('err_microphone'), 'error'));
  });

  async function fillMics() {
    try {
      const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput' && d.deviceId);
      const current = roomCall.call?.pc?.getSenders().find((s) => s.track?.kind === 'audio')?.track?.getSettings().deviceId;
      replace(micSelect, ...devices.map((d, i) => h('option', { value: d.deviceId, text: d.label || t('microphone_n', { n: i + 1 }) })));
      const wanted = localStorage.getItem('webcall.mic');
      if (wanted && devices.some((d) => d.deviceId === wanted)) {
        micSelect.value = wanted;
        if (wanted !== current) await roomCall.useMicrophone(wanted);
      } else if (current) {
        micSelect.value = current;
      }
    } catch { /* no devices */ }
  }
  function renderMute() {
    const self = roomCall.self;
    const muted = Boolean(self?.muted);
    muteButton.setAttribute('aria-pressed', String(muted));
    replace(muteButton, icon(muted ? 'mic-off' : 'mic'), ' ',
      self?.mute_locked ? t('muted_by_moderator') : muted ? t('unmute') : t('mute'));
    muteButton.classList.toggle('is-muted', muted);
  }

  function renderGrid() {
    const ps = [...roomCall.participants.values()].sort((a, b) => a.username.localeCompare(b.username) || a.participant_id - b.participant_id);
    gridCount.textContent = t('in_call_count', { n: ps.length });
    gridCount.hidden = false;
    const myRole = roomCall.self?.role ?? room?.role ?? 'member';
    const keep = new Set();
    /** @type {HTMLLIElement[]} */
    const ordered = [];
    for (const p of ps) {
      keep.add(p.participant_id);
      const tile = h('li', { class: 'tile', 'data-pid': String(p.participant_id), 'data-user': p.username });
      const label = p.username + (p.participant_id === roomCall.me ? ` (${t('you')})` : '');
      const name = h('span', { class: 'tile-name', title: label, text: label });
      const badges = h('span', { class: 'tile-badges' });
      if (p.role !== 'member') badges.append(h('span', { class: `role role-${p.role}`, text: roleName(p.role) }));
      if (p.muted) {
        const m = h('span', { class: 'muted-icon', title: p.mute_locked ? t('muted_by_moderator') : t('muted') }, [icon('mic-off')]);
        m.append(h('span', { class: 'visually-hidden', text: p.mute_locked ? t('muted_by_moderator') : t('muted') }));
        badges.append(m);
      }
      const initials = h('span', { class: 'avatar', 'aria-hidden': 'true', text: p.username.slice(0, 2).toUpperCase() });
      tile.append(initials, h('span', { class: 'tile-text' }, [name, badges]));
      const perm = permissions(myRole, p.role);
      if (perm.moderate && p.user_id !== me.id) {
        /** @param {() => void} fn */
        const act = (fn) => (/** @type {Event} */ ev) => {
          const details = /** @type {HTMLElement} */ (ev.currentTarget).closest('details');
          if (details) details.open = false;
          fn();
        };
        const actions = h('details', { class: 'tile-actions' }, [
          h('summary', { 'aria-label': t('actions_for', { name: p.username }), text: '⋯' }),
          h('div', { class: 'menu' }, [
            p.muted
              ? h('button', { type: 'button', onclick: act(() => roomCall.requestUnmute(p.participant_id)), text: t('ask_to_unmute') })
              : h('button', { type: 'button', onclick: act(() => roomCall.muteParticipant(p.participant_id)), text: t('mute') }),
            h('button', {
              type: 'button', class: 'danger',
              onclick: act(() => { if (confirm(t('confirm_remove', { name: p.username }))) roomCall.removeUser(p.user_id); }),
              text: t('remove_from_room'),
            }),
          ]),
        ]);
        tile.append(actions);
      }
      tile.classList.toggle('speaking', p.speaking && !p.muted);
      tile.classList.toggle('active-speaker', roomCall.activeSpeaker === p.participant_id);
      // Keep an open actions menu open across re-renders.
      const old = tiles.get(p.participant_id);
      const openMenu = old?.querySelector('details[open]');
      if (openMenu) tile.querySelector('details')?.setAttribute('open', '');
      tiles.set(p.participant_id, tile);
      ordered.push(tile);
    }
    for (const pid of [...tiles.keys()]) if (!keep.has(pid)) tiles.delete(pid);
    const focused = document.activeElement;
    const focusPid = focused instanceof HTMLElement ? focused.closest('.tile')?.getAttribute('data-pid') : null;
    replace(grid, ...ordered);
    if (focusPid) tiles.get(Number(focusPid))?.querySelector('summary')?.focus();
    renderMute();
  }

  /** @param {number} pid */
  function updateSpeaking(pid) {
    const tile = tiles.get(pid);
    const p = roomCall.participants.get(pid);
    if (!tile || !p) return;
    tile.classList.toggle('speaking', p.speaking && !p.muted);
    tile.classList.toggle('active-speaker', roomCall.activeSpeaker === pid);
  }

  /** @param {import('../signaling.js').ServerMessage} msg */
  function onRoomMessage(msg) {
    switch (msg.type) {
      case 'chat': chat.add(msg.message); break;
      case 'history': for (const m of msg.messages ?? []) chat.add(m); break;
      case 'unmute_requested': {
        const by = nameOf(msg.by_user_id);
        if (msg.participant_id === roomCall.me) {
          const button = h('button', { type: 'button', class: 'primary', text: t('unmute'), onclick: () => { roomCall.setMuted(false); unmutePrompt.hidden = true; } });
          replace(unmutePrompt, h('span', { text: t('asked_to_unmute', { name: by }) }), ' ', button,
            h('button', { type: 'button', text: t('stay_muted'), onclick: () => { unmutePrompt.hidden = true; } }));
          unmutePrompt.hidden = false;
          button.focus();
        } else {
          ctx.announce(t('unmute_requested_other', { by, name: nameOf(msg.user_id) }));
          showActivity(t('unmute_requested_other', { by, name: nameOf(msg.user_id) }));
        }
        break;
      }
      case 'mute_changed':
        if (msg.participant_id === roomCall.me && !msg.muted) {
          showActivity('');
          unmutePrompt.hidden = true;
        } else if (msg.participant_id === roomCall.me && msg.muted && msg.by_user_id !== me.id) {
          showActivity(t('you_were_muted', { name: nameOf(msg.by_user_id) }));
        } else if (msg.participant_id !== roomCall.me && msg.muted && msg.by_user_id !== msg.user_id) {
          showActivity(t('was_muted', { name: nameOf(msg.user_id), by: nameOf(msg.by_user_id) }));
        }
        break;
      case 'role_changed':
      case 'member_removed':
        if (!(msg.type === 'member_removed' && msg.user_id === me.id)) void loadMembers();
        if (msg.type === 'role_changed' && msg.user_id === me.id && room) {
          room.role = msg.role;
          roleBadge.textContent = roleName(msg.role);
        }
        break;
      case 'transcription_state':
      case 'caption':
      case 'summary':
        agent.handle(msg);
        break;
      default: break;
    }
  }

  const activity = h('p', { class: 'activity', role: 'status' });
  callSection.insertBefore(activity, gridCount);
  /** @param {string} text */
  function showActivity(text) {
    activity.textContent = text;
  }

  /** @param {number} userId */
  function nameOf(userId) {
    for (const p of roomCall.participants.values()) if (p.user_id === userId) return p.username;
    return members.find((m) => m.user_id === userId)?.username ?? `#${userId}`;
  }

  function onRemoved() {
    if (removed) return;
    removed = true;
    showBanner(t('you_were_removed'));
    chatForm.hidden = true;
    joinButton.disabled = true;
    membersSection.hidden = true;
    agentSection.hidden = true;
    if (pollTimer) clearInterval(pollTimer);
  }

  // ---- chat ---------------------------------------------------------------------------
  const chatList = h('ol', { class: 'chat-list', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('chat_messages') });
  const olderButton = h('button', { type: 'button', class: 'link-button', hidden: true, text: t('load_older') });
  const chatInputId = newId('chat');
  const chatInput = h('textarea', { id: chatInputId, name: 'text', rows: '2', 'aria-describedby': `${chatInputId}-count ${chatInputId}-error` });
  const counter = h('span', { id: `${chatInputId}-count`, class: 'counter', text: `0 / ${MAX_CHARS}` });
  const chatError = h('p', { id: `${chatInputId}-error`, class: 'field-error', hidden: true });
  const sendButton = h('button', { type: 'submit', class: 'primary', text: t('send') });
  const chatForm = h('form', { class: 'chat-form', novalidate: true }, [
    h('label', { for: chatInputId, class: 'visually-hidden', text: t('message') }),
    chatInput,
    h('div', { class: 'chat-form-row' }, [counter, sendButton]),
    chatError,
  ]);
  const chatSection = h('section', { class: 'chat card', 'aria-labelledby': `${chatInputId}-h` }, [
    h('h2', { id: `${chatInputId}-h`, class: 'section-title', text: t('chat') }),
    olderButton, chatList, chatForm,
  ]);

  /** @type {Map<string, HTMLLIElement>} */
  const pendingEls = new Map();
  const chat = new ChatStore(ctx.api, roomId, {
    onInsert: (msg) => {
      const stick = chatList.scrollHeight - chatList.scrollTop - chatList.clientHeight < 60;
      const item = messageItem(msg);
      // In id order: usually the end.
      let before = null;
      for (let c = /** @type {Element | null} */ (chatList.lastElementChild); c; c = c.previousElementSibling) {
        const id = Number(c.getAttribute('data-id') ?? 'Infinity');
        if (c.classList.contains('pending')) { before = c; continue; }
        if (id > msg.id) before = c; else break;
      }
      chatList.insertBefore(item, before);
      if (stick) chatList.scrollTop = chatList.scrollHeight;
    },
    onOlder: (msgs, hasMore) => {
      const first = chatList.firstElementChild;
      const height = chatList.scrollHeight;
      for (const m of msgs) chatList.insertBefore(messageItem(m), first);
      chatList.scrollTop += chatList.scrollHeight - height;
      olderButton.hidden = !hasMore;
    },
    onPending: (key, text) => {
      const item = h('li', { class: 'msg mine pending' }, [
        h('div', { class: 'msg-head' }, [h('span', { class: 'msg-author', text: me.username }), h('span', { class: 'msg-time', text: t('sending') })]),
        h('p', { class: 'msg-text', text }),
      ]);
      pendingEls.set(key, item);
      chatList.append(item);
      chatList.scrollTop = chatList.scrollHeight;
    },
    onPendingDone: (key, failed) => {
      const item = pendingEls.get(key);
      pendingEls.delete(key);
      if (!item) return;
      if (failed === null) item.remove();
      else {
        item.classList.add('failed');
        const time = item.querySelector('.msg-time');
        if (time) time.textContent = t('not_sent');
      }
    },
  });

  /** @param {import('../api.js').ChatMessage} msg */
  function messageItem(msg) {
    const mine = msg.user_id === me.id;
    return h('li', { class: mine ? 'msg mine' : 'msg', 'data-id': String(msg.id) }, [
      h('div', { class: 'msg-head' }, [
        h('span', { class: 'msg-author', text: msg.username }),
        h('time', { class: 'msg-time', datetime: msg.created_at, text: formatTime(msg.created_at, lang) }),
      ]),
      h('p', { class: 'msg-text' }, linkify(msg.text)),
    ]);
  }

  function updateCounter() {
    const n = charCount(chatInput.value);
    counter.textContent = `${n} / ${MAX_CHARS}`;
    const over = n > MAX_CHARS;
    counter.classList.toggle('over', over);
    if (over) setFieldError({ input: chatInput, error: chatError }, t('err_too_long', { n: n - MAX_CHARS }));
    else if (!chatError.hidden) setFieldError({ input: chatInput, error: chatError }, '');
  }
  chatInput.addEventListener('input', updateCounter);
  chatInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      chatForm.requestSubmit();
    }
  });
  chatForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = chatInput.value;
    if (!text.trim()) return;
    if (charCount(text) > MAX_CHARS) {
      updateCounter();
      chatInput.focus();
      return;
    }
    chatInput.value = '';
    updateCounter();
    chat.send(text).catch((err) => {
      setFieldError({ input: chatInput, error: chatError }, errorText(err));
      if (!chatInput.value) { chatInput.value = text; updateCounter(); }
      if (err instanceof ApiError && err.status === 404) onGone();
    });
  });
  olderButton.addEventListener('click', () => {
    void chat.loadOlder().catch((err) => ctx.notify(errorText(err), 'error'));
  });

  // Outside the call, the room socket isn't joined and gets no chat: poll for new messages.
  /** @type {ReturnType<typeof setInterval> | null} */
  let pollTimer = null;
  function poll() {
    if (disposed || removed) return;
    if (roomCall.state === 'connected' || roomCall.state === 'connecting') return;
    chat.catchUp().catch((err) => {
      if (err instanceof ApiError && err.status === 404) onGone();
    });
  }

  function onGone() {
    if (removed) return;
    onRemoved();
    showBanner(t('room_gone'));
    roomCall.leave();
  }

  // ---- members --------------------------------------------------------------------------
  /** @type {import('../api.js').Member[]} */
  let members = [];
  const memberList = h('ul', { class: 'member-list' });
  const addName = field({ name: 'username', label: t('username'), required: true, maxlength: 32 });
  const roleId = newId('role');
  const addRole = h('select', { id: roleId, name: 'role' });
  const addError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const addForm = h('form', { class: 'add-member', novalidate: true, hidden: true }, [
    h('h3', { text: t('add_member') }),
    addName.row,
    h('div', { class: 'field' }, [h('label', { for: roleId, text: t('role') }), addRole]),
    addError,
    h('button', { type: 'submit', text: t('add') }),
  ]);
  const membersSection = h('section', { class: 'members card', 'aria-labelledby': 'members-h' }, [
    h('h2', { id: 'members-h', class: 'section-title', text: t('members') }), memberList, addForm,
  ]);
  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors({ username: addName }, addError);
    const name = addName.input.value.trim();
    if (!name) { setFieldError(addName, t('err_required')); addName.input.focus(); return; }
    try {
      await ctx.api.addMember(roomId, name, /** @type {import('../api.js').Role} */ (addRole.value));
      addName.input.value = '';
      ctx.announce(t('member_added', { name }));
      await loadMembers();
    } catch (err) {
      showFormError(err, { username: addName }, addError, (e) => (e.status === 404 || e.code === 'already_member' ? 'username' : undefined));
      if (err instanceof ApiError && err.status === 404 && !err.field) {
        setFieldError(addName, t('err_no_such_user'));
      }
    }
  });

  async function loadMembers() {
    if (disposed || removed) return;
    try {
      const [list, presence] = await Promise.all([ctx.api.members(roomId), ctx.api.presence(roomId)]);
      if (disposed) return;
      members = list;
      const myRole = list.find((m) => m.user_id === me.id)?.role ?? room?.role ?? 'member';
      const byUser = new Map(presence.map((p) => [p.user_id, p]));
      replace(memberList, ...list.map((m) => memberRow(m, myRole, byUser.get(m.user_id))));
      addForm.hidden = myRole === 'member';
      const roles = myRole === 'owner' ? ['member', 'moderator'] : ['member'];
      if (addRole.options.length !== roles.length) replace(addRole, ...roles.map((r) => h('option', { value: r, text: roleName(r) })));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) onGone();
    }
  }

  /**
   * @param {import('../api.js').Member} m
   * @param {string} myRole
   * @param {import('../api.js').Presence | undefined} p
   */
  function memberRow(m, myRole, p) {
    const perm = permissions(myRole, m.role);
    const status = p?.in_call ? t('status_in_call') : p?.online ? t('status_online') : t('status_offline');
    const row = h('li', { class: 'member', 'data-user': m.username }, [
      h('span', { class: `dot ${p?.in_call ? 'dot-call' : p?.online ? 'dot-online' : 'dot-offline'}`, 'aria-hidden': 'true' }),
      h('span', { class: 'member-name' }, [
        m.user_id === me.id ? `${m.username} (${t('you')})` : m.username,
        h('span', { class: 'visually-hidden', text: `, ${status}` }),
      ]),
    ]);
    if (perm.changeRole && m.user_id !== me.id) {
      const id = newId('member-role');
      const select = h('select', { id, 'aria-label': t('role_of', { name: m.username }) },
        ['member', 'moderator'].map((r) => h('option', { value: r, text: roleName(r), selected: r === m.role })));
      select.addEventListener('change', async () => {
        try {
          await ctx.api.changeRole(roomId, m.user_id, /** @type {import('../api.js').Role} */ (select.value));
          ctx.announce(t('role_changed', { name: m.username, role: roleName(select.value) }));
          await loadMembers();
        } catch (err) {
          ctx.notify(errorText(err), 'error');
          select.value = m.role;
        }
      });
      row.append(select);
    } else {
      row.append(h('span', { class: `role role-${m.role}`, text: roleName(m.role) }));
    }
    if (perm.moderate && m.user_id !== me.id) {
      row.append(h('button', {
        type: 'button', class: 'danger small', 'aria-label': t('remove_name', { name: m.username }), text: t('remove'),
        onclick: async () => {
          if (!confirm(t('confirm_remove', { name: m.username }))) return;
          try {
            await ctx.api.removeMember(roomId, m.user_id);
            ctx.announce(t('member_removed', { name: m.username }));
            await loadMembers();
          } catch (err) {
            ctx.notify(errorText(err), 'error');
          }
        },
      }));
    }
    return row;
  }

  // ---- AI agent -------------------------------------------------------------------------
  const agentState = h('p', { class: 'agent-state', role: 'status' });
  const agentButton = h('button', { type: 'button', text: t('start_transcription') });
  const summariseButton = h('button', { type: 'button', text: t('summarise') });
  const captions = h('ol', { class: 'captions', 'aria-live': 'polite', 'aria-label': t('live_captions') });
  const transcriptButton = h('button', { type: 'button', class: 'link-button', text: t('show_transcript') });
  const transcriptBox = h('ol', { class: 'transcript', hidden: true, 'aria-label': t('transcript') });
  const summaryList = h('ol', { class: 'summaries', 'aria-label': t('summaries') });
  const agentSection = h('section', { class: 'agent card', 'aria-labelledby': 'agent-h' }, [
    h('h2', { id: 'agent-h', class: 'section-title', text: t('ai_agent') }),
    agentState,
    h('div', { class: 'button-row' }, [agentButton, summariseButton]),
    h('h3', { text: t('live_captions') }), captions,
    h('h3', { text: t('transcript') }), transcriptButton, transcriptBox,
    h('h3', { text: t('summaries') }), summaryList,
  ]);

  const agent = new Agent(ctx.api, roomId, {
    onState: renderAgent,
    onCaption: (c) => {
      captions.append(h('li', { class: 'caption', 'data-user': c.username }, [
        h('span', { class: 'caption-who', text: `${c.username}: ` }), c.text,
      ]));
      while (captions.childElementCount > 50) captions.firstElementChild?.remove();
    },
    onSummaries: renderSummaries,
  });

  function renderAgent() {
    const inCall = roomCall.state === 'connected' || roomCall.state === 'reconnecting' || roomCall.state === 'connecting';
    if (agent.active) {
      agentState.textContent = t('transcribing_by', { name: agent.byUserId ? nameOf(agent.byUserId) : '?' });
      agentState.classList.add('on');
    } else {
      agentState.textContent = inCall ? t('not_transcribing') : t('join_to_transcribe');
      agentState.classList.remove('on');
    }
    agentButton.textContent = agent.active ? t('stop_transcription') : t('start_transcription');
    agentButton.setAttribute('aria-pressed', String(agent.active));
    agentButton.disabled = !inCall;
    summariseButton.disabled = agent.summarising;
    summariseButton.textContent = agent.summarising ? t('summarising') : t('summarise');
  }
  agentButton.addEventListener('click', () => {
    if (agent.active) roomCall.stopTranscription();
    else roomCall.startTranscription();
  });
  summariseButton.addEventListener('click', async () => {
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
      replace(transcriptBox, ...(segments.length ? segments.map((s) => h('li', {}, [
        h('time', { datetime: s.started_at, text: formatTime(s.started_at, lang) }), ' ',
        h('strong', { text: `${s.username}: ` }), s.text,
      ])) : [h('li', { class: 'muted', text: t('no_transcript') })]));
      transcriptBox.hidden = false;
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
    replace(summaryList, ...(agent.summaries.length ? agent.summaries.map((s) => h('li', { class: 'summary' }, [
      h('div', { class: 'msg-head' }, [
        h('strong', { text: t('summary_by', { name: s.requested_by_name }) }),
        h('time', { datetime: s.created_at, text: formatTime(s.created_at, lang) }),
        s.source === 'heuristic' ? h('span', { class: 'tag', text: t('heuristic') }) : null,
        deliveryTag(agent.deliveries.get(s.id)),
      ]),
      h('p', { class: 'summary-text' }, linkify(s.text)),
    ])) : [h('li', { class: 'muted', text: t('no_summaries') })]));
  }

  // ---- side panel tabs ------------------------------------------------------------------
  const panels = [
    { key: 'chat', label: t('chat'), el: chatSection },
    { key: 'members', label: t('members'), el: membersSection },
    { key: 'agent', label: t('ai_agent'), el: agentSection },
  ];
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': t('room_panels') });
  /** @type {HTMLButtonElement[]} */
  const tabButtons = [];
  /** @param {number} index @param {boolean} focus */
  function selectTab(index, focus) {
    panels.forEach((p, i) => {
      const on = i === index;
      tabButtons[i].setAttribute('aria-selected', String(on));
      tabButtons[i].tabIndex = on ? 0 : -1;
      p.el.hidden = !on || (removed && p.key !== 'chat');
    });
    if (focus) tabButtons[index].focus();
  }
  panels.forEach((p, i) => {
    const id = `tab-${p.key}`;
    p.el.id = `panel-${p.key}`;
    p.el.setAttribute('role', 'tabpanel');
    p.el.setAttribute('aria-labelledby', id);
    const b = h('button', { type: 'button', role: 'tab', id, 'aria-controls': p.el.id, text: p.label });
    b.addEventListener('click', () => selectTab(i, false));
    b.addEventListener('keydown', (ev) => {
      if (ev.key === 'ArrowRight') selectTab((i + 1) % panels.length, true);
      else if (ev.key === 'ArrowLeft') selectTab((i + panels.length - 1) % panels.length, true);
    });
    tabButtons.push(b);
    tablist.append(b);
  });
  // A tabpanel names itself by its tab; the h2 inside is then redundant for the label.
  chatSection.removeAttribute('aria-labelledby');
  membersSection.removeAttribute('aria-labelledby');
  agentSection.removeAttribute('aria-labelledby');
  chatSection.setAttribute('aria-labelledby', 'tab-chat');
  membersSection.setAttribute('aria-labelledby', 'tab-members');
  agentSection.setAttribute('aria-labelledby', 'tab-agent');
  selectTab(0, false);

  // ---- load -----------------------------------------------------------------------------
  async function load() {
    try {
      room = await ctx.api.room(roomId);
    } catch (err) {
      if (disposed) return;
      heading.textContent = t('room_unavailable');
      showBanner(err instanceof ApiError && err.status === 404 ? t('room_gone') : errorText(err));
      return;
    }
    if (disposed) return;
    heading.textContent = room.name;
    document.title = `${room.name} · WebCall`;
    roleBadge.textContent = roleName(room.role);
    roleBadge.className = `role role-${room.role}`;
    roleBadge.hidden = false;
    deleteButton.hidden = room.role !== 'owner';
    replace(body, callSection, h('div', { class: 'side' }, [tablist, chatSection, membersSection, agentSection]));
    renderAgent();
    renderSummaries();
    void loadMembers();
    void agent.loadSummaries().catch(() => {});
    try {
      await chat.load();
      olderButton.hidden = !chat.hasOlder;
      chatList.scrollTop = chatList.scrollHeight;
    } catch (err) {
      ctx.notify(errorText(err), 'error');
    }
    pollTimer = setInterval(poll, 3000);
    const presenceTimer = setInterval(() => { void loadMembers(); }, 10_000);
    cleanups.push(() => clearInterval(presenceTimer));
  }

  deleteButton.addEventListener('click', async () => {
    if (!room || !confirm(t('confirm_delete_room', { name: room.name }))) return;
    try {
      roomCall.leave();
      await ctx.api.deleteRoom(roomId);
      ctx.notify(t('room_deleted', { name: room.name }));
      ctx.router.navigate('/');
    } catch (err) {
      ctx.notify(errorText(err), 'error');
    }
  });

  void load();

  return {
    el, title: t('room'), focus: heading,
    dispose: () => {
      disposed = true;
      if (pollTimer) clearInterval(pollTimer);
      for (const fn of cleanups) fn();
      roomCall.leave();
      exposeCall(null);
    },
  };
}
