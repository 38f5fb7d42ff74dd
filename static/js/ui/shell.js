// @ts-check
// The app's frame: top bar (navigation, unread badge, sign out), the view slot, toasts and
// the screen-reader announcer. In-app links go through the router.

import { t } from '../i18n.js';
import { h, replace } from './dom.js';

/**
 * @typedef {{
 *   api: import('../api.js').Api,
 *   session: import('../session.js').Session,
 *   router: import('../router.js').Router,
 *   dm: import('../dm.js').DmService,
 *   userSocket: import('../user-socket.js').UserSocket,
 *   invites: import('../invites.js').InviteService,
 *   notify: (text: string, kind?: 'error' | 'info') => void,
 *   announce: (text: string) => void,
 *   takeExpiredNotice: () => string,
 * }} AppContext
 * @typedef {{el: HTMLElement, title: string, dispose: () => void, focus?: HTMLElement | null}} View
 */

export class Shell {
  constructor() {
    this.topbar = /** @type {HTMLElement} */ (document.getElementById('topbar'));
    this.main = /** @type {HTMLElement} */ (document.getElementById('view'));
    this.announcer = /** @type {HTMLElement} */ (document.getElementById('announcer'));
    this.toasts = /** @type {HTMLElement} */ (document.getElementById('toasts'));
    this.unread = 0;
    /** @type {HTMLElement | null} */
    this.badge = null;
    this.first = true;
    const skip = document.querySelector('.skip-link');
    if (skip) skip.textContent = t('skip_to_content');
  }

  /** @param {AppContext} ctx @param {import('../router.js').Route} route */
  renderTopbar(ctx, route) {
    const user = ctx.session.user;
    /** @param {string} href @param {string} label @param {boolean} current */
    const link = (href, label, current) => h('a', { href, class: 'nav-link', 'aria-current': current ? 'page' : null, text: label });
    this.badge = h('span', { class: 'badge', hidden: this.unread === 0 });
    this.fillBadge();
    const brand = h('a', { href: '/', class: 'brand', text: 'WebCall' });
    if (!user) {
      replace(this.topbar, brand);
      return;
    }
    const dmLink = link('/dm', t('nav_messages'), route.name === 'dm' || route.name === 'dms');
    dmLink.append(' ', this.badge);
    replace(this.topbar,
      brand,
      h('nav', { 'aria-label': t('nav_main') }, [
        link('/', t('nav_rooms'), route.name === 'rooms' || route.name === 'room'),
        dmLink,
        link('/settings', t('nav_settings'), route.name === 'settings'),
      ]),
      h('div', { class: 'whoami' }, [
        h('span', { class: 'username', text: user.username }),
        h('button', { type: 'button', class: 'link-button', onclick: () => {
          // Revoke the token on the server too (best effort: the local session ends anyway).
          ctx.api.logout().catch(() => {});
          ctx.session.end('signed_out');
        }, text: t('sign_out') }),
      ]),
    );
  }

  /** @param {number} n */
  setUnread(n) {
    this.unread = n;
    if (!this.badge) return;
    this.fillBadge();
  }

  /** The count, and for screen readers what it counts (visible text stays in the name). */
  fillBadge() {
    if (!this.badge) return;
    replace(this.badge, String(this.unread), h('span', { class: 'visually-hidden', text: ` ${t('unread')}` }));
    this.badge.hidden = this.unread === 0;
  }

  /** @param {View} view @param {string} title */
  mount(view, title) {
    replace(this.main, view.el);
    document.title = title ? `${title} · WebCall` : 'WebCall';
    // Focus moves to the new screen (not on the first load, where the browser starts at the top).
    if (!this.first) (view.focus ?? this.main).focus();
    this.first = false;
  }

  /** @param {string} text @param {'error' | 'info'} [kind] */
  toast(text, kind = 'info') {
    const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null, text });
    this.toasts.append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
  }

  /** @param {string} text */
  announce(text) {
    this.announcer.textContent = '';
    setTimeout(() => { this.announcer.textContent = text; }, 50);
  }

  /**
   * Same-origin links without a target open through the router (no reload).
   * @param {import('../router.js').Router} router
   */
  interceptLinks(router) {
    document.addEventListener('click', (ev) => {
      if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      const a = /** @type {Element | null} */ (ev.target instanceof Element ? ev.target.closest('a[href]') : null);
      if (!(a instanceof HTMLAnchorElement) || a.target || a.hasAttribute('download')) return;
      if ((a.getAttribute('href') ?? '').startsWith('#')) return;
      const url = new URL(a.href);
      if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
      ev.preventDefault();
      router.navigate(url.pathname + url.search);
    });
  }

  /** @param {AppContext} _ctx @returns {View} */
  notFound(_ctx) {
    const heading = h('h1', { tabindex: '-1', text: t('not_found_title') });
    const el = h('section', { class: 'page narrow' }, [
      heading,
      h('p', { text: t('not_found_text') }),
      h('p', {}, [h('a', { href: '/', text: t('back_to_rooms') })]),
    ]);
    return { el, title: t('not_found_title'), dispose: () => {}, focus: heading };
  }
}

