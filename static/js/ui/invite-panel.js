// @ts-check
// "Call someone in", on the room page beside the members: ring a user into this room's call,
// see "Calling bob…" with a Cancel button (in every tab of the caller), then how it ended.

import { ApiError } from '../api.js';
import { t } from '../i18n.js';
import { h, replace, setFieldError } from './dom.js';
import { errorText } from './errors.js';

/**
 * @typedef {{el: HTMLElement, dispose: () => void}} InvitePanel
 */

/**
 * @param {import('./shell.js').AppContext} ctx
 * @param {number} roomId
 * @param {{onAccepted: () => void}} hooks `onAccepted`: someone accepted (and is a member now)
 * @returns {InvitePanel}
 */
export function createInvitePanel(ctx, roomId, hooks) {
  const me = /** @type {import('../api.js').User} */ (ctx.session.user);
  const invites = ctx.invites;
  const input = h('input', {
    id: 'invite-username', name: 'invite-username', type: 'text', autocomplete: 'off', maxlength: 64,
    required: true, 'aria-describedby': 'invite-explain invite-username-error',
  });
  const error = h('p', { id: 'invite-username-error', class: 'field-error', hidden: true });
  const send = h('button', { type: 'submit', id: 'invite-send', class: 'primary', text: t('invite_send') });
  const status = h('div', { id: 'invite-status', class: 'invite-status', 'aria-live': 'polite' });
  const form = h('form', { class: 'invite-form', novalidate: true }, [
    h('h3', { text: t('invite_title') }),
    h('p', { id: 'invite-explain', class: 'hint', text: t('invite_explain') }),
    h('div', { class: 'field' }, [
      h('label', { for: 'invite-username', text: t('invite_who') }),
      h('div', { class: 'invite-row' }, [input, send]),
      error,
    ]),
    status,
  ]);
  const ref = { input, error };
  /** The last ending heard in this tab, shown under the pending calls. */
  let outcome = '';

  function render() {
    const pending = invites.calling(roomId);
    /** @type {HTMLElement[]} */
    const rows = pending.map((inv, i) => h('p', { class: 'invite-pending', 'data-user': inv.to_username, 'data-invite': inv.id }, [
      h('span', { text: t('invite_calling', { name: inv.to_username }) }), ' ',
      h('button', {
        type: 'button', class: 'small invite-cancel', id: i === 0 ? 'invite-cancel' : null,
        'aria-label': t('invite_cancel_name', { name: inv.to_username }), text: t('cancel'),
        onclick: (/** @type {Event} */ ev) => void cancel(inv.id, /** @type {HTMLButtonElement} */ (ev.currentTarget)),
      }),
    ]));
    replace(status, ...rows, outcome ? h('p', { class: 'invite-outcome', text: outcome }) : null);
  }

  /** @param {string} id @param {HTMLButtonElement} button */
  async function cancel(id, button) {
    button.disabled = true;
    try {
      await invites.cancel(id);
      input.focus();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) ctx.notify(errorText(err), 'error');
      button.disabled = false;
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setFieldError(ref, '');
    const name = input.value.trim();
    if (!name) {
      setFieldError(ref, t('err_required'));
      input.focus();
      return;
    }
    send.disabled = true;
    try {
      await invites.invite(roomId, name);
      input.value = '';
      outcome = '';
      render();
      ctx.announce(t('invite_calling', { name }));
    } catch (err) {
      setFieldError(ref, inviteError(err, name, me.username));
      input.focus();
    } finally {
      send.disabled = false;
    }
  });
  input.addEventListener('input', () => setFieldError(ref, ''));

  const off = invites.on((ev) => {
    if (ev.kind === 'ended' && ev.invite.room_id === roomId && ev.invite.from_user_id === me.id) {
      const key = /** @type {const} */ ({
        accepted: 'invite_accepted', declined: 'invite_declined', cancelled: 'invite_cancelled',
        timeout: 'invite_timeout', gone: 'invite_gone',
      })[ev.outcome] ?? 'invite_gone';
      outcome = t(key, { name: ev.invite.to_username });
      ctx.announce(outcome);
      if (ev.outcome === 'accepted') hooks.onAccepted();
    }
    render();
  });
  render();

  return { el: form, dispose: off };
}

/**
 * An invite refused, in words (the person's name where it helps).
 * @param {unknown} err
 * @param {string} name who was called
 * @param {string} myName
 */
function inviteError(err, name, myName) {
  if (!(err instanceof ApiError)) return errorText(err);
  if (err.code === 'busy') return t('invite_err_busy', { name });
  if (err.code === 'invite_pending') return t('invite_err_pending', { name });
  if (err.status === 422 && name.toLowerCase() === myName.toLowerCase()) return t('invite_err_self');
  // The room answered when the page opened, so a 404 here is the user.
  if (err.status === 404) return t('err_no_such_user');
  return errorText(err);
}
