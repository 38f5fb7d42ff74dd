// @ts-check
// Routes with the History API: `/`, `/login`, `/rooms/{id}`, `/dm`, `/dm/{username}`,
// `/settings`. No DOM: the views call `navigate`; link clicks are wired in ui/shell.js.

/**
 * @typedef {{name: 'rooms'} | {name: 'login'} | {name: 'room', id: number} | {name: 'dms'}
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
    window.addEventListener('popstate', () => this.onRoute(parse(location.pathname)));
  }

  /** @returns {Route} */
  get route() { return parse(location.pathname); }

  /**
   * Goes to `path` (same origin) and renders it.
   * @param {string} path
   * @param {{replace?: boolean}} [opts]
   */
  navigate(path, opts = {}) {
    if (path !== location.pathname + location.search) {
      if (opts.replace) history.replaceState(null, '', path);
      else history.pushState(null, '', path);
    }
    this.onRoute(parse(location.pathname));
  }

  /** Renders the current location (first load). */
  start() { this.onRoute(parse(location.pathname)); }
}
