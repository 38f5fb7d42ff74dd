// @ts-check
// The incoming-call overlay, in every tab of the person being called: who calls, into which
// room, Accept and Decline, and the ringtone in a loop. Where the browser refuses to play
// sound before the user has touched the page (autoplay policy), the overlay pulses and the
// tab title blinks instead, until the call stops ringing. Accept joins the room's call.

import { ApiError } from '../api.js';
import { t } from '../i18n.js';
import { h, replace } from './dom.js';
import { errorText } from './errors.js';

const RINGTONE = '/media/special_ringtone.mp3';
const BLINK_MS = 1000;

/**
 * What the browser tests read: whether the ringtone is sounding right now. Nothing in the
 * app reads it.
 * @param {() => {playing: boolean, blocked: boolean, time: number}} get
 */
function exposeRinging(get) {
  Object.defineProperty(window, 'webcallRinging', { configurable: true, get });
}

/**
 * Mounts the overlay (hidden until something rings) at the end of <body>.
 * @param {import('./shell.js').AppContext} ctx
 */
export function mountIncomingCall(ctx) {
  const invites = ctx.invites;
  const title = h('p', { id: 'incoming-call-title', class: 'incoming-call-title' });
  const room = h('p', { id: 'incoming-call-room', class: 'incoming-call-room' });
  const more = h('p', { class: 'incoming-call-more muted', hidden: true });
  const accept = h('button', { type: 'button', id: 'incoming-call-accept', class: 'accept', text: t('accept_call') });
  const decline = h('button', { type: 'button', id: 'incoming-call-decline', class: 'danger', text: t('decline_call') });
  const el = h('div', {
    id: 'incoming-call', class: 'incoming-call', role: 'dialog', 'aria-modal': 'false',
    'aria-labelledby': 'incoming-call-title', 'aria-describedby': 'incoming-call-room',
    'data-ringtone': 'off', hidden: true,
  }, [
    h('p', { class: 'incoming-call-label', text: t('incoming_call') }),
    title, room, more,
    h('div', { class: 'button-row' }, [accept, decline]),
  ]);
  document.body.append(el);

  /** @type {import('../api.js').Invite | null} */
  let shown = null;
  /** @type {HTMLAudioElement | null} */
  let audio = null;
  let ringing = false;
  let blocked = false;
  /** @type {ReturnType<typeof setInterval> | null} */
  let blinker = null;
  let plainTitle = document.title;
  let blinkText = '';
  exposeRinging(() => ({
    playing: Boolean(audio && ringing && !audio.paused && !audio.ended),
    blocked,
    time: audio?.currentTime ?? 0,
  }));

  function render() {
    const list = invites.ringing();
    const next = list[0] ?? null;
    if (!next) {
      shown = null;
      el.hidden = true;
      stopRinging();
      return;
    }
    const changed = shown?.id !== next.id;
    shown = next;
    title.textContent = t('incoming_from', { name: next.from_username });
    room.textContent = t('incoming_room', { room: next.room_name });
    more.textContent = list.length > 1 ? `+${list.length - 1}` : '';
    more.hidden = list.length < 2;
    accept.disabled = false;
    decline.disabled = false;
    el.hidden = false;
    if (changed) {
      ctx.announce(`${t('incoming_call')}: ${t('incoming_from', { name: next.from_username })}, ${t('incoming_room', { room: next.room_name })}`);
      if (blinker) blinkText = t('title_calling', { name: next.from_username });
    }
    startRinging(next.from_username);
  }

  /** @param {string} caller */
  function startRinging(caller) {
    if (ringing) return;
    ringing = true;
    blocked = false;
    audio ??= new Audio(RINGTONE);
    audio.loop = true;
    audio.currentTime = 0;
    el.dataset.ringtone = 'starting';
    audio.play().then(() => {
      if (!ringing) { audio?.pause(); return; }
      el.dataset.ringtone = 'playing';
    }).catch(() => {
      if (!ringing) return;
      // Autoplay refused (no user gesture yet), or no sound device: be seen instead.
      blocked = true;
      el.dataset.ringtone = 'blocked';
      el.classList.add('incoming-call--pulse');
      startBlinking(caller);
    });
  }

  function stopRinging() {
    if (!ringing) return;
    ringing = false;
    blocked = false;
    audio?.pause();
    el.dataset.ringtone = 'off';
    el.classList.remove('incoming-call--pulse');
    stopBlinking();
  }

  /** @param {string} caller */
  function startBlinking(caller) {
    if (blinker) return;
    blinkText = t('title_calling', { name: caller });
    plainTitle = document.title;
    let on = false;
    const tick = () => {
      // The view may set its own title meanwhile: that is the one to come back to.
      if (document.title !== blinkText) plainTitle = document.title;
      on = !on;
      document.title = on ? blinkText : plainTitle;
    };
    tick();
    blinker = setInterval(tick, BLINK_MS);
  }

  function stopBlinking() {
    if (!blinker) return;
    clearInterval(blinker);
    blinker = null;
    if (document.title === blinkText) document.title = plainTitle;
  }

  // A blocked ringtone gets another chance with the first touch of the page elsewhere.
  /** @param {Event} ev */
  const retry = (ev) => {
    if (!ringing || !blocked || !audio) return;
    if (ev.target instanceof Node && el.contains(ev.target)) return;
    audio.play().then(() => { if (ringing) el.dataset.ringtone = 'playing'; else audio?.pause(); }).catch(() => {});
  };
  document.addEventListener('pointerdown', retry, true);
  document.addEventListener('keydown', retry, true);

  accept.addEventListener('click', async () => {
    const invite = shown;
    if (!invite) return;
    accept.disabled = true;
    decline.disabled = true;
    stopRinging();
    try {
      const roomId = await invites.accept(invite.id);
      ctx.router.navigate(`/rooms/${roomId}`, { join: true });
    } catch (err) {
      ctx.notify(isGone(err) ? t('call_no_longer_ringing') : errorText(err), 'error');
      render();
    }
  });

  decline.addEventListener('click', async () => {
    const invite = shown;
    if (!invite) return;
    accept.disabled = true;
    decline.disabled = true;
    try {
      await invites.decline(invite.id);
    } catch (err) {
      if (!isGone(err)) ctx.notify(errorText(err), 'error');
      render();
    }
  });

  invites.on((ev) => {
    if (ev.kind === 'ended' && ev.invite.to_user_id === ctx.session.user?.id
      && (ev.outcome === 'cancelled' || ev.outcome === 'timeout')) {
      ctx.notify(t('missed_call', { name: ev.invite.from_username }));
    }
    render();
  });

  return {
    /** Re-labels the overlay after a language change. */
    relabel() {
      replace(accept, t('accept_call'));
      replace(decline, t('decline_call'));
      const label = el.querySelector('.incoming-call-label');
      if (label) label.textContent = t('incoming_call');
      if (shown) render();
    },
  };
}

/** @param {unknown} err */
function isGone(err) {
  return err instanceof ApiError && err.status === 404;
}
