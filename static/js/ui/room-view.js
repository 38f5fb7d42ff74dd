// @ts-check
// The room page: the call (participant grid, mute, microphone, moderation, connection
// state) beside three panels: chat (chat-panel.js), members (members-panel.js, with "Call
// someone in" from invite-panel.js) and the AI agent (agent-panel.js). Room-socket events
// are routed from here. Opened with `join` (an accepted call), it joins the call itself.

import { permissions } from '../agent.js';
import { ApiError } from '../api.js';
import { roleName, t } from '../i18n.js';
import { RoomCall } from '../room-call.js';
import { createAgentPanel } from './agent-panel.js';
import { createChatPanel } from './chat-panel.js';
import { h, icon, newId, replace } from './dom.js';
import { errorText } from './errors.js';
import { createInvitePanel } from './invite-panel.js';
import { createMembersPanel } from './members-panel.js';

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
 * @param {{join?: boolean}} [opts] `join`: join the call once the room has loaded
 * @returns {import('./shell.js').View}
 */
export function renderRoom(ctx, roomId, opts = {}) {
  const me = /** @type {import('../api.js').User} */ (ctx.session.user);
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
    onState: (state, detail) => {
      const key = /** @type {const} */ ({
        idle: 'call_idle', connecting: 'call_connecting', connected: 'call_connected',
        reconnecting: 'call_reconnecting', removed: 'call_removed', deleted: 'call_room_deleted', replaced: 'call_replaced', closed: 'call_idle', failed: 'call_failed',
      })[state];
      callState.textContent = state === 'failed' && detail === 'microphone' ? t('call_no_microphone') : t(key);
      callState.dataset.state = state;
      const inCall = state === 'connecting' || state === 'connected' || state === 'reconnecting';
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
      if (state === 'removed') onRemoved(t('you_were_removed'));
      if (state === 'deleted') onRemoved(t('room_was_deleted'));
      if (state === 'connected') void fillMics();
      renderMute();
      agentPanel.render();
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
    onRejoined: () => { void chat.catchUp(); },
    onMessage: (msg) => onRoomMessage(msg),
    onNotice: (code) => {
      // The socket fell behind and events were dropped: fetch the chat it missed.
      if (code === 'lagged') void chat.catchUp();
      else if (code === 'mute_locked') ctx.notify(t('err_mute_locked'), 'error');
      else if (code === 'transcription_unavailable') ctx.notify(t('err_transcription_unavailable'), 'error');
      else if (code === 'forbidden') ctx.notify(t('err_forbidden'), 'error');
      else if (code === 'rate_limited') ctx.notify(t('err_rate_limited'), 'error');
      // ROOM_MAX_PARTICIPANTS reached: this join was refused (the server says so once).
      else if (code === 'room_full') ctx.notify(t('err_room_full'), 'error');
    },
  });

  function callActive() {
    return roomCall.state === 'connecting' || roomCall.state === 'connected' || roomCall.state === 'reconnecting';
  }
  function startCall() {
    void roomCall.join();
    exposeCall(roomCall);
  }
  joinButton.addEventListener('click', () => {
    if (!callActive()) startCall();
    else roomCall.leave();
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

  // A tile's action menu closes with Escape (focus back on its button) or a click elsewhere.
  grid.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape') return;
    const details = ev.target instanceof Element ? ev.target.closest('details[open]') : null;
    if (details instanceof HTMLDetailsElement) {
      details.open = false;
      details.querySelector('summary')?.focus();
    }
  });
  /** @param {MouseEvent} ev */
  const closeMenus = (ev) => {
    for (const d of grid.querySelectorAll('details[open]')) {
      if (!(ev.target instanceof Node) || !d.contains(ev.target)) /** @type {HTMLDetailsElement} */ (d).open = false;
    }
  };
  document.addEventListener('click', closeMenus);
  cleanups.push(() => document.removeEventListener('click', closeMenus));

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
      case 'chat': chat.store.add(msg.message); break;
      case 'history': for (const m of msg.messages ?? []) chat.store.add(m); break;
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
        if (!(msg.type === 'member_removed' && msg.user_id === me.id)) void membersPanel.load();
        if (msg.type === 'role_changed' && msg.user_id === me.id && room) {
          room.role = msg.role;
          roleBadge.textContent = roleName(msg.role);
        }
        break;
      case 'transcription_state':
      case 'caption':
      case 'caption_partial':
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
    return membersPanel.members().find((m) => m.user_id === userId)?.username ?? `#${userId}`;
  }

  /**
   * Removed from the room, or the room deleted: only what was already read stays.
   * @param {string} why
   */
  function onRemoved(why) {
    if (removed) return;
    removed = true;
    showBanner(why);
    chat.close();
    joinButton.disabled = true;
    // Only the chat history stays (read-only).
    selectTab(0, false);
    tablist.hidden = true;
    if (pollTimer) clearInterval(pollTimer);
  }

  // ---- side panels ------------------------------------------------------------------------
  const chat = createChatPanel(ctx, roomId, { onGone });
  const invitePanel = createInvitePanel(ctx, roomId, { onAccepted: () => { void membersPanel.load(); } });
  cleanups.push(invitePanel.dispose);
  const membersPanel = createMembersPanel(ctx, roomId, { onGone, active: () => !disposed && !removed, top: invitePanel.el });
  const agentPanel = createAgentPanel(ctx, roomId, {
    inCall: () => roomCall.state === 'connected' || roomCall.state === 'reconnecting' || roomCall.state === 'connecting',
    nameOf,
    start: (language) => roomCall.startTranscription(language),
    stop: () => roomCall.stopTranscription(),
  });
  const agent = agentPanel.agent;

  // Outside the call the room socket isn't joined and gets no chat: poll for new messages.
  /** @type {ReturnType<typeof setInterval> | null} */
  let pollTimer = null;
  function poll() {
    if (disposed || removed) return;
    if (roomCall.state === 'connected' || roomCall.state === 'connecting') return;
    void chat.catchUp();
  }

  function onGone() {
    if (removed) return;
    onRemoved(t('room_gone'));
    roomCall.leave();
  }

  // ---- side panel tabs ------------------------------------------------------------------
  const panels = [
    { key: 'chat', label: t('chat'), el: chat.section },
    { key: 'members', label: t('members'), el: membersPanel.section },
    { key: 'agent', label: t('ai_agent'), el: agentPanel.section },
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
    if (panels[index].key === 'chat') chat.seen();
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
  // The Chat tab counts what arrived while another panel was shown.
  const chatTab = tabButtons[0];
  chat.onUnseen((n) => {
    chatTab.textContent = n ? `${t('chat')} (${n})` : t('chat');
  });
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
    replace(body, callSection, h('div', { class: 'side' }, [tablist, chat.section, membersPanel.section, agentPanel.section]));
    if (opts.join) {
      // An accepted call: straight in (the click on Accept lets its audio play).
      ctx.router.takeJoin();
      if (!callActive() && !removed) startCall();
    }
    void membersPanel.load();
    void agent.loadSummaries().catch(() => {});
    try {
      await chat.load();
    } catch (err) {
      ctx.notify(errorText(err), 'error');
    }
    pollTimer = setInterval(poll, 3000);
    const presenceTimer = setInterval(() => { void membersPanel.load(); }, 10_000);
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
