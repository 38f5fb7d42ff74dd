// @ts-check
// Entry of call.html: joins the room named in the URL fragment (#room=ID&token=JWT; the
// fragment never reaches the server or its logs) and plays everyone else's audio. The call
// reconnects by itself; the status line says so while it does.

import { Call } from './call.js';
import { onLeave, playRemote, showStatus } from './ui/call-view.js';

const params = new URLSearchParams(location.hash.slice(1));
const roomId = Number(params.get('room'));
const token = params.get('token') ?? sessionStorage.getItem('webcall.token') ?? '';

if (!roomId || !token) {
  showStatus('open this page as call.html#room=<id>&token=<jwt>');
} else {
  /** The page's state changes, newest last (the browser tests read them). */
  const states = /** @type {{state: string, detail: string, at: number}[]} */ ([]);
  const call = new Call(roomId, token, {
    onState: (state, detail) => {
      states.push({ state, detail, at: Date.now() });
      if (states.length > 100) states.shift();
      showStatus(state === 'reconnecting' ? `reconnecting… (${detail})` : detail ? `${state}: ${detail}` : state);
    },
    onRemoteStream: (id, stream) => playRemote(id, stream),
  });
  // Exposed for the browser tests, which read getStats() through it.
  Object.assign(window, { webcall: call, webcallStates: states });
  onLeave(() => call.leave());
  call.join().catch((err) => showStatus(`failed: ${err}`));
}
