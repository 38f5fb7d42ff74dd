// @ts-check
// The call page's DOM: status line, one entry (and <audio>) per remote participant.

/** @param {string} text */
export function showStatus(text) {
  const out = document.getElementById('call-status');
  if (out) out.textContent = text;
}

/**
 * Plays a remote participant's audio. Elements are keyed by stream id (`p<participant>`),
 * so a participant's audio replaces its previous element instead of stacking.
 * @param {string} streamId
 * @param {MediaStream} stream
 */
export function playRemote(streamId, stream) {
  const list = document.getElementById('participants');
  if (!list) return;
  let item = /** @type {HTMLLIElement | null} */ (list.querySelector(`li[data-stream="${CSS.escape(streamId)}"]`));
  if (!item) {
    item = document.createElement('li');
    item.dataset.stream = streamId;
    const label = document.createElement('span');
    label.textContent = `participant ${streamId.replace(/^p/, '')}`;
    item.append(label, document.createElement('audio'));
    list.append(item);
  }
  const audio = /** @type {HTMLAudioElement} */ (item.querySelector('audio'));
  audio.autoplay = true;
  audio.srcObject = stream;
  void audio.play().catch(() => showStatus('click to allow audio playback'));
}

/** @param {() => void} handler */
export function onLeave(handler) {
  document.getElementById('leave')?.addEventListener('click', handler);
}
