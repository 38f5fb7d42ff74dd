// @ts-check
// The rooms list: each room with the caller's role and who is in its call now; create one.

import { t } from '../i18n.js';
import { field, h, replace } from './dom.js';
import { clearFormErrors, errorText, showFormError } from './errors.js';

/**
 * @param {import('./shell.js').AppContext} ctx
 * @returns {import('./shell.js').View}
 */
export function renderRooms(ctx) {
  const heading = h('h1', { tabindex: '-1', text: t('rooms_title') });
  const list = h('ul', { class: 'room-list', 'aria-busy': 'true' });
  const status = h('p', { class: 'muted', text: t('loading') });

  const name = field({ name: 'name', label: t('room_name'), required: true, maxlength: 100 });
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const create = h('button', { type: 'submit', class: 'primary', text: t('create_room') });
  const form = h('form', { class: 'card inline-form', novalidate: true }, [
    h('h2', { text: t('new_room') }), name.row, formError, create,
  ]);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors({ name }, formError);
    if (!name.input.value.trim()) {
      showFormError(null, { name }, formError);
      name.error.textContent = t('err_required');
      name.error.hidden = false;
      name.input.setAttribute('aria-invalid', 'true');
      return;
    }
    create.disabled = true;
    try {
      const room = await ctx.api.createRoom(name.input.value.trim());
      ctx.router.navigate(`/rooms/${room.id}`);
    } catch (err) {
      showFormError(err, { name }, formError);
    } finally {
      create.disabled = false;
    }
  });

  let disposed = false;
  /** @type {ReturnType<typeof setInterval> | null} */
  let timer = null;

  async function load() {
    try {
      const rooms = await ctx.api.rooms();
      if (disposed) return;
      const presence = await Promise.all(rooms.map((r) => ctx.api.presence(r.id).catch(() => [])));
      if (disposed) return;
      list.setAttribute('aria-busy', 'false');
      status.hidden = rooms.length > 0;
      status.textContent = t('no_rooms');
      replace(list, ...rooms.map((room, i) => {
        const inCall = presence[i].filter((p) => p.in_call).map((p) => p.username);
        return h('li', { class: 'room-item card' }, [
          h('div', { class: 'room-line' }, [
            h('a', { href: `/rooms/${room.id}`, class: 'room-name', text: room.name }),
            h('span', { class: `role role-${room.role}`, text: t(`role_${room.role}`) }),
          ]),
          h('p', { class: inCall.length ? 'in-call' : 'muted' },
            [inCall.length ? t('in_call_now', { names: inCall.join(', ') }) : t('nobody_in_call')]),
        ]);
      }));
    } catch (err) {
      if (disposed) return;
      status.hidden = false;
      status.textContent = errorText(err);
    }
  }

  void load();
  timer = setInterval(load, 10_000);

  const el = h('section', { class: 'page' }, [
    heading,
    h('div', { class: 'rooms-layout' }, [
      h('div', {}, [status, list]),
      form,
    ]),
  ]);
  return {
    el, title: t('rooms_title'), focus: heading,
    dispose: () => { disposed = true; if (timer) clearInterval(timer); },
  };
}
