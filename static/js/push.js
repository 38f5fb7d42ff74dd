// @ts-check
// Web Push: the service worker (`/sw.js`, scope `/`) and this browser's push subscription
// (the server's VAPID key; the subscription is sent to and removed from the API). The
// worker shows the notifications; a click on one focuses an open tab and sends it a
// `navigate` message. No DOM.

/** @typedef {'unsupported' | 'denied' | 'on' | 'off'} PushState */

/** Whether this browser can receive Web Push at all. */
export function pushSupported() {
  return typeof navigator !== 'undefined' && 'serviceWorker' in navigator
    && typeof window !== 'undefined' && 'PushManager' in window && 'Notification' in window;
}

/**
 * Registers the service worker (once per load is enough; the browser keeps it).
 * @returns {Promise<ServiceWorkerRegistration | null>} null where it can't be registered
 */
export async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return null;
  try {
    return await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  } catch {
    return null;
  }
}

/**
 * Calls `fn` with the same-origin path a clicked notification asks this tab to show.
 * @param {(path: string) => void} fn
 */
export function onNavigateRequest(fn) {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (ev) => {
    const data = ev.data;
    if (!data || data.type !== 'navigate' || typeof data.url !== 'string') return;
    try {
      const url = new URL(data.url, location.origin);
      if (url.origin === location.origin) fn(url.pathname + url.search);
    } catch { /* not a URL */ }
  });
}

/** @returns {Promise<ServiceWorkerRegistration>} */
async function registration() {
  const reg = (await navigator.serviceWorker.getRegistration('/')) ?? (await registerServiceWorker());
  if (!reg) throw new Error('no service worker');
  // Subscribing needs an active worker.
  return navigator.serviceWorker.ready.then(() => reg);
}

/** Whether this browser is subscribed (and may be). @returns {Promise<PushState>} */
export async function pushState() {
  if (!pushSupported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = await reg?.pushManager.getSubscription();
  return sub && Notification.permission === 'granted' ? 'on' : 'off';
}

/**
 * Turns notifications on: asks for permission, subscribes with the server's VAPID key and
 * gives the server the subscription. A subscription made with another key is replaced.
 * @param {import('./api.js').Api} api
 * @returns {Promise<PushState>} `on`, or why not (`denied`, `unsupported`); other failures throw
 */
export async function enablePush(api) {
  if (!pushSupported()) return 'unsupported';
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') return permission === 'denied' ? 'denied' : 'off';
  const key = base64UrlToBytes(await api.vapidKey());
  const reg = await registration();
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe().catch(() => false);
    sub = null;
  }
  sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await api.addPushSubscription(/** @type {import('./api.js').PushSubscriptionBody} */ (sub.toJSON()));
  return 'on';
}

/**
 * Gives the server this browser's subscription again, under the current session (after a
 * sign-in, and on start): a subscription belongs to the session that saved it and ends with
 * it, so a new session must save it anew. Nothing happens where notifications are off;
 * failures are left for the next start.
 * @param {import('./api.js').Api} api
 */
export async function resyncPush(api) {
  if (!pushSupported() || Notification.permission !== 'granted') return;
  try {
    const reg = await navigator.serviceWorker.getRegistration('/');
    const sub = await reg?.pushManager.getSubscription();
    if (sub) await api.addPushSubscription(/** @type {import('./api.js').PushSubscriptionBody} */ (sub.toJSON()));
  } catch { /* the next start tries again */ }
}

/**
 * Turns notifications off in this browser: the server forgets the subscription (when it
 * can be told) and the browser drops it.
 * @param {import('./api.js').Api | null} api null to only drop it here (signed out already)
 */
export async function disablePush(api) {
  if (!pushSupported()) return;
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = await reg?.pushManager.getSubscription();
  if (!sub) return;
  try {
    if (api) await api.removePushSubscription(sub.endpoint);
  } finally {
    await sub.unsubscribe().catch(() => false);
  }
}

/**
 * base64url (no padding) to bytes, as `applicationServerKey` wants the VAPID key.
 * @param {string} text
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function base64UrlToBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  const raw = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** @param {ArrayBuffer | null} a @param {Uint8Array} b */
function sameKey(a, b) {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}
