// @ts-check
// Entry of the single-page app: session, router, the user socket, invites (incoming calls
// ring in every tab), the service worker for push, and the shell that puts one view at a
// time into <main>.

import { Api } from './js/api.js';
import { DmService } from './js/dm.js';
import { currentLang, onLangChange, t } from './js/i18n.js';
import { InviteService } from './js/invites.js';
import { disablePush, onNavigateRequest, registerServiceWorker, resyncPush } from './js/push.js';
import { Router } from './js/router.js';
import { Session } from './js/session.js';
import { UserSocket } from './js/user-socket.js';
import { renderAuth } from './js/ui/auth-view.js';
import { renderDms } from './js/ui/dm-view.js';
import { mountIncomingCall } from './js/ui/incoming-call.js';
import { renderRoom } from './js/ui/room-view.js';
import { renderRooms } from './js/ui/rooms-view.js';
import { renderSettings } from './js/ui/settings-view.js';
import { Shell } from './js/ui/shell.js';

/**
 * @typedef {import('./js/ui/shell.js').AppContext} AppContext
 * @typedef {import('./js/ui/shell.js').View} View
 */

const session = new Session();
/** @type {string} */
let expiredNotice = '';
const api = new Api(() => session.token, () => session.end('expired'));
const userSocket = new UserSocket(() => session.token);
// The socket can't tell why it was refused; the API can (401 ends the session).
userSocket.onRefused = () => { api.me().catch(() => {}); };
const dm = new DmService(api, session, userSocket);
const invites = new InviteService(api, session, userSocket);
const shell = new Shell();

/** @type {View | null} */
let view = null;

const router = new Router((route) => {
  if (!session.user && route.name !== 'login') {
    const next = location.pathname === '/' ? '' : `?next=${encodeURIComponent(location.pathname)}`;
    history.replaceState(null, '', `/login${next}`);
    route = { name: 'login' };
  } else if (session.user && route.name === 'login') {
    history.replaceState(null, '', '/');
    route = { name: 'rooms' };
  }
  show(route);
});

/** @type {AppContext} */
const ctx = {
  api, session, router, dm, userSocket, invites,
  notify: (text, kind) => shell.toast(text, kind),
  announce: (text) => shell.announce(text),
  takeExpiredNotice: () => { const n = expiredNotice; expiredNotice = ''; return n; },
};

/** @param {import('./js/router.js').Route} route */
function show(route) {
  view?.dispose();
  view = null;
  shell.renderTopbar(ctx, route);
  /** @type {View} */
  let next;
  switch (route.name) {
    case 'login': next = renderAuth(ctx); break;
    case 'rooms': next = renderRooms(ctx); break;
    case 'room': next = renderRoom(ctx, route.id, { join: route.join }); break;
    case 'dms': next = renderDms(ctx, null); break;
    case 'dm': next = renderDms(ctx, route.username); break;
    case 'settings': next = renderSettings(ctx); break;
    default: next = shell.notFound(ctx); break;
  }
  view = next;
  shell.mount(next, next.title);
}

session.onChange((reason) => {
  if (reason === 'signed_in') {
    invites.start();
    userSocket.start();
    dm.start();
    void resyncPush(api);
    return;
  }
  userSocket.stop();
  dm.stop();
  invites.stop();
  // Signed out on purpose: this browser stops getting the user's notifications (the server
  // drops the subscription when the push service reports it gone).
  if (reason === 'signed_out') disablePush(null).catch(() => {});
  if (reason === 'expired') expiredNotice = t('session_expired');
  router.navigate('/login', { replace: true });
});

const incomingCall = mountIncomingCall(ctx);

onLangChange(() => {
  document.documentElement.lang = currentLang();
  incomingCall.relabel();
  show(router.route);
});

shell.interceptLinks(router);
document.documentElement.lang = currentLang();
dm.onUnread((n) => shell.setUnread(n));
if (session.user) {
  // A stored token may have expired on the server side (restart with a new secret, say).
  api.me().then(() => { invites.start(); userSocket.start(); dm.start(); void resyncPush(api); }).catch(() => { /* 401 ends the session */ });
}
router.start();
// The worker shows push notifications; a click on one asks an open tab to show its page.
void registerServiceWorker();
onNavigateRequest((path) => { if (session.user) router.navigate(path); });
