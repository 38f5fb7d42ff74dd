// @ts-check
// Routes with the History API: `/`, `/login`, `/rooms/{id}`, `/dm`, `/dm/{username}`,
// `/settings`. No DOM: the views call `navigate`; link clicks are wired in ui/shell.js.
// A room can be opened with `join` (an accepted call): the flag lives in that history
// entry's state until the room page takes it, so a reload or going back doesn't join again.

/**
 * @typedef {{name: 'rooms'} | {name: 'login'} | {name: 'room', id: number, join?: boolean} | {name: 'dms'}
 *   | {name: 'dm', username: string} | {name: 'settings'} | {name: 'not_found'}} Route
 */

/**
 * @param {string} pathname
 * @returns {Route}
 */
export function parse(pathname) {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/' || path === '/index.html') return { name: 'rooms' };
  if (path === '/login') return { name: 'login' };
  if (path === '/settings') return { name: 'settings' };
  if (path === '/dm') return { name: 'dms' };
  let m = /^\/rooms\/(\d{1,15})$/.exec(path);
  if (m) return { name: 'room', id: Number(m[1]) };
  m = /^\/dm\/([A-Za-z0-9_.-]{1,64})$/.exec(path);
  if (m) return { name: 'dm', username: m[1] };
  return { name: 'not_found' };
}

export class Router {
  /** @param {(route: Route) => void} onRoute */
  constructor(onRoute) {
    this.onRoute = onRoute;
    window.addEventListener('popstate', () => this.onRoute(this.route));
  }

  /** @returns {Route} */
  get route() {
    const route = parse(location.pathname);
    if (route.name === 'room' && history.state?.join === true) route.join = true;
    return route;
  }

  /**
   * Goes to `path` (same origin) and renders it.
   * @param {string} path
   * @param {{replace?: boolean, join?: boolean}} [opts] `join`: a room page joins its call
   */
  navigate(path, opts = {}) {
    const state = opts.join ? { join: true } : null;
    const same = path === location.pathname + location.search;
    if (!same || state) {
      if (opts.replace || same) history.replaceState(state, '', path);
      else history.pushState(state, '', path);
    }
    this.onRoute(this.route);
  }

  /** Clears the current entry's `join` flag (the room page has joined). */
  takeJoin() {
    if (history.state?.join) history.replaceState(null, '', location.pathname + location.search);
  }

  /** Renders the current location (first load). */
  start() { this.onRoute(this.route); }
}
