// @ts-check
// The room's members: presence (online, in the call), add, change role, remove — each
// offered only where docs/protocol.md's permission table allows it.

import { permissions } from '../agent.js';
import { ApiError } from '../api.js';
import { roleName, t } from '../i18n.js';
import { field, h, newId, replace, setFieldError } from './dom.js';
import { clearFormErrors, errorText, showFormError } from './errors.js';

/**
 * @typedef {{section: HTMLElement, load: () => Promise<void>, members: () => import('../api.js').Member[], myRole: () => string | null}} MembersPanel
 */

/**
 * @param {import('./shell.js').AppContext} ctx
 * @param {number} roomId
 * @param {{onGone: () => void, active: () => boolean, top?: HTMLElement}} hooks `active`: false once
 *   the page is gone or the user removed (nothing more to load); `top`: shown above the list
 * @returns {MembersPanel}
 */
export function createMembersPanel(ctx, roomId, hooks) {
  const me = /** @type {import('../api.js').User} */ (ctx.session.user);
  /** @type {import('../api.js').Member[]} */
  let members = [];
  /** @type {string | null} */
  let myRole = null;
  const list = h('ul', { class: 'member-list' });
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
  const section = h('section', { class: 'members card' }, [
    h('h2', { class: 'section-title', text: t('members') }), hooks.top, list, addForm,
  ]);

  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors({ username: addName }, addError);
    const name = addName.input.value.trim();
    if (!name) {
      setFieldError(addName, t('err_required'));
      addName.input.focus();
      return;
    }
    try {
      await ctx.api.addMember(roomId, name, /** @type {import('../api.js').Role} */ (addRole.value));
      // Someone quick may already have typed the next name while this one was in flight: keep it.
      if (addName.input.value.trim() === name) addName.input.value = '';
      ctx.announce(t('member_added', { name }));
      await load();
    } catch (err) {
      showFormError(err, { username: addName }, addError, (e) => (e.status === 404 || e.code === 'already_member' ? 'username' : undefined));
      // 404 here is the user, not the room (the room answered the members list).
      if (err instanceof ApiError && err.status === 404 && !err.field) setFieldError(addName, t('err_no_such_user'));
    }
  });

  async function load() {
    if (!hooks.active()) return;
    try {
      const [all, presence] = await Promise.all([ctx.api.members(roomId), ctx.api.presence(roomId)]);
      if (!hooks.active()) return;
      members = all;
      myRole = all.find((m) => m.user_id === me.id)?.role ?? null;
      const byUser = new Map(presence.map((p) => [p.user_id, p]));
      replace(list, ...all.map((m) => memberRow(m, myRole ?? 'member', byUser.get(m.user_id))));
      addForm.hidden = !myRole || myRole === 'member';
      const roles = myRole === 'owner' ? ['member', 'moderator'] : ['member'];
      if (addRole.options.length !== roles.length) replace(addRole, ...roles.map((r) => h('option', { value: r, text: roleName(r) })));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) hooks.onGone();
    }
  }

  /**
   * @param {import('../api.js').Member} m
   * @param {string} role the viewer's role
   * @param {import('../api.js').Presence | undefined} p
   */
  function memberRow(m, role, p) {
    const perm = permissions(role, m.role);
    const status = p?.in_call ? t('status_in_call') : p?.online ? t('status_online') : t('status_offline');
    const row = h('li', { class: 'member', 'data-user': m.username }, [
      h('span', { class: `dot ${p?.in_call ? 'dot-call' : p?.online ? 'dot-online' : 'dot-offline'}`, 'aria-hidden': 'true' }),
      h('span', { class: 'member-name' }, [
        m.user_id === me.id ? `${m.username} (${t('you')})` : m.username,
        h('span', { class: 'visually-hidden', text: `, ${status}` }),
      ]),
    ]);
    if (perm.changeRole && m.user_id !== me.id) {
      const select = h('select', { id: newId('member-role'), 'aria-label': t('role_of', { name: m.username }) },
        ['member', 'moderator'].map((r) => h('option', { value: r, text: roleName(r), selected: r === m.role })));
      select.addEventListener('change', async () => {
        try {
          await ctx.api.changeRole(roomId, m.user_id, /** @type {import('../api.js').Role} */ (select.value));
          ctx.announce(t('role_changed', { name: m.username, role: roleName(select.value) }));
          await load();
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
            await load();
          } catch (err) {
            ctx.notify(errorText(err), 'error');
          }
        },
      }));
    }
    return row;
  }

  return { section, load, members: () => members, myRole: () => myRole };
}
