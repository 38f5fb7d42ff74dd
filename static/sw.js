// @ts-check
// The service worker (`/sw.js`, scope `/`): shows Web Push notifications (incoming calls,
// DMs, chat) and, on a click, brings WebCall forward at the notification's page. It has no
// fetch handler: pages load from the network as before. Registered by js/push.js.
//
// Push payload (JSON): {kind: 'invite' | 'dm' | 'chat', title, body, url, tag, count?}.

/**
 * The parts of the worker's global scope used here (tsconfig checks this file with the DOM
 * library, which has no worker types).
 * @typedef {{waitUntil: (p: Promise<unknown>) => void}} ExtendableEvent
 * @typedef {ExtendableEvent & {data: {text: () => string} | null}} PushEvent
 * @typedef {ExtendableEvent & {notification: Notification}} NotificationEvent
 * @typedef {{id: string, url: string, focused: boolean, visibilityState: string,
 *   focus: () => Promise<unknown>, postMessage: (msg: unknown) => void}} WindowClient
 * @typedef {{
 *   location: Location,
 *   registration: ServiceWorkerRegistration,
 *   skipWaiting: () => Promise<void>,
 *   clients: {
 *     claim: () => Promise<void>,
 *     matchAll: (opts: {type: 'window', includeUncontrolled: boolean}) => Promise<WindowClient[]>,
 *     openWindow: (url: string) => Promise<unknown>,
 *   },
 *   addEventListener: (type: string, fn: (ev: any) => void) => void,
 * }} WorkerScope
 * @typedef {{kind?: string, title?: string, body?: string, url?: string, tag?: string, count?: number}} Payload
 */

const worker = /** @type {WorkerScope} */ (/** @type {unknown} */ (self));

worker.addEventListener('install', (/** @type {ExtendableEvent} */ ev) => {
  ev.waitUntil(worker.skipWaiting());
});

worker.addEventListener('activate', (/** @type {ExtendableEvent} */ ev) => {
  ev.waitUntil(worker.clients.claim());
});

worker.addEventListener('push', (/** @type {PushEvent} */ ev) => {
  /** @type {Payload} */
  let payload = {};
  try {
    payload = ev.data ? JSON.parse(ev.data.text()) : {};
  } catch {
    payload = { body: ev.data?.text() ?? '' };
  }
  const title = payload.title || 'WebCall';
  const tag = payload.tag || '';
  /** @type {NotificationOptions & {renotify?: boolean, requireInteraction?: boolean}} */
  const options = {
    body: payload.body ?? '',
    icon: '/favicon.svg',
    data: { url: sameOriginPath(payload.url), kind: payload.kind ?? '' },
    // An incoming call stays until answered or dismissed.
    requireInteraction: payload.kind === 'invite',
  };
  if (tag) {
    options.tag = tag;
    // A newer message under the same tag alerts again (renotify needs a tag).
    options.renotify = true;
  }
  ev.waitUntil(worker.registration.showNotification(title, options));
});

worker.addEventListener('notificationclick', (/** @type {NotificationEvent} */ ev) => {
  ev.notification.close();
  const url = sameOriginPath(ev.notification.data?.url);
  ev.waitUntil((async () => {
    const windows = await worker.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const own = windows.filter((c) => c.url.startsWith(worker.location.origin));
    const best = own.find((c) => c.focused) ?? own.find((c) => c.visibilityState === 'visible') ?? own[0];
    if (best) {
      // The app routes it itself: no reload, so a call in that tab goes on.
      await best.focus();
      best.postMessage({ type: 'navigate', url });
      return;
    }
    await worker.clients.openWindow(url);
  })());
});

/**
 * A path on this origin (anything else becomes `/`).
 * @param {unknown} url
 * @returns {string}
 */
function sameOriginPath(url) {
  if (typeof url !== 'string' || !url) return '/';
  try {
    const u = new URL(url, worker.location.origin);
    return u.origin === worker.location.origin ? u.pathname + u.search + u.hash : '/';
  } catch {
    return '/';
  }
}
