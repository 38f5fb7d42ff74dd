// @ts-check
// Settings: the AI prompt (10-4000 characters), the Telegram link, the UI language. No DOM.

export const PROMPT_MIN = 10;
export const PROMPT_MAX = 4000;

/**
 * Checks a prompt as the server will (trimmed length).
 * @param {string} prompt
 * @returns {'too_short' | 'too_long' | null}
 */
export function checkPrompt(prompt) {
  let n = 0;
  for (const _ of prompt.trim()) n += 1;
  if (n < PROMPT_MIN) return 'too_short';
  if (n > PROMPT_MAX) return 'too_long';
  return null;
}

/**
 * Polls the Telegram link status until it is `confirmed` (or stopped).
 * @param {import('./api.js').Api} api
 * @param {(status: import('./api.js').TelegramStatus) => void} onStatus
 * @param {number} [everyMs]
 * @returns {() => void} stop
 */
export function pollTelegram(api, onStatus, everyMs = 3000) {
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      const status = await api.telegramStatus();
      if (stopped) return;
      onStatus(status);
      if (status === 'confirmed' || status === 'absent') return;
    } catch { /* try again */ }
    timer = setTimeout(tick, everyMs);
  };
  timer = setTimeout(tick, everyMs);
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}
