// @ts-check
// Settings: language, notifications (Web Push on this device), the AI summary prompt, the
// Telegram link, this browser's encryption key.

import { ApiError } from '../api.js';
import { LANGS, currentLang, setLang, t } from '../i18n.js';
import { disablePush, enablePush, pushState } from '../push.js';
import { PROMPT_MAX, PROMPT_MIN, checkPrompt, pollTelegram } from '../settings.js';
import { h, newId, replace, setFieldError } from './dom.js';
import { errorText } from './errors.js';

/**
 * @param {import('./shell.js').AppContext} ctx
 * @returns {import('./shell.js').View}
 */
export function renderSettings(ctx) {
  const heading = h('h1', { tabindex: '-1', text: t('settings_title') });
  /** @type {Array<() => void>} */
  const cleanups = [];

  // Language
  const langId = newId('lang');
  const langSelect = h('select', { id: langId }, LANGS.map((l) => h('option', { value: l.code, text: l.name, selected: l.code === currentLang(), lang: l.code })));
  langSelect.addEventListener('change', () => setLang(langSelect.value));
  const langSection = h('section', { class: 'card', 'aria-labelledby': 'lang-h' }, [
    h('h2', { id: 'lang-h', class: 'section-title', text: t('language') }),
    h('div', { class: 'field' }, [h('label', { for: langId, text: t('interface_language') }), langSelect]),
  ]);

  // Notifications (Web Push)
  const pushToggle = h('input', { type: 'checkbox', id: 'push-toggle', role: 'switch', 'aria-describedby': 'push-status' });
  const pushStatus = h('p', { id: 'push-status', class: 'push-status', role: 'status' });
  /** @param {import('../push.js').PushState | 'failed' | 'unavailable' | 'working'} state */
  function showPush(state) {
    pushStatus.dataset.state = state;
    pushStatus.textContent = t(/** @type {const} */ ({
      on: 'push_on', off: 'push_off', denied: 'push_denied', unsupported: 'push_unsupported',
      failed: 'push_failed', unavailable: 'push_unavailable', working: 'push_working',
    })[state]);
    pushToggle.checked = state === 'on';
    pushToggle.disabled = state === 'unsupported' || state === 'denied' || state === 'working';
  }
  pushToggle.addEventListener('change', async () => {
    const wanted = pushToggle.checked;
    showPush('working');
    try {
      if (wanted) {
        showPush(await enablePush(ctx.api));
      } else {
        await disablePush(ctx.api);
        showPush('off');
      }
    } catch (err) {
      // 404/503: the server has no VAPID key (push not configured).
      if (err instanceof ApiError && (err.status === 404 || err.status === 503)) showPush('unavailable');
      else if (err instanceof ApiError) { showPush(await pushState().catch(() => 'off')); pushStatus.textContent = errorText(err); }
      else showPush('failed');
    }
    pushToggle.focus();
  });
  pushState().then(showPush).catch(() => showPush('unsupported'));
  const pushSection = h('section', { class: 'card', 'aria-labelledby': 'push-h' }, [
    h('h2', { id: 'push-h', class: 'section-title', text: t('notifications') }),
    h('p', { class: 'muted', text: t('push_explain') }),
    h('div', { class: 'switch-row' }, [pushToggle, h('label', { for: 'push-toggle', text: t('push_toggle') })]),
    pushStatus,
  ]);

  // AI prompt
  const promptId = newId('prompt');
  const prompt = h('textarea', { id: promptId, rows: '8', 'aria-describedby': `${promptId}-hint ${promptId}-error` });
  const promptHint = h('p', { id: `${promptId}-hint`, class: 'hint' });
  const promptError = h('p', { id: `${promptId}-error`, class: 'field-error', hidden: true });
  const promptState = h('p', { class: 'muted', role: 'status' });
  const save = h('button', { type: 'submit', class: 'primary', text: t('save') });
  const reset = h('button', { type: 'button', text: t('reset_default') });
  const promptForm = h('form', { novalidate: true }, [
    h('div', { class: 'field' }, [h('label', { for: promptId, text: t('summary_prompt') }), prompt, promptHint, promptError]),
    promptState,
    h('div', { class: 'button-row' }, [save, reset]),
  ]);
  const promptRef = { input: prompt, error: promptError };
  function updateHint() {
    const n = [...prompt.value.trim()].length;
    promptHint.textContent = t('prompt_hint', { n, min: PROMPT_MIN, max: PROMPT_MAX });
    promptHint.classList.toggle('over', n > PROMPT_MAX || n < PROMPT_MIN);
  }
  prompt.addEventListener('input', () => { updateHint(); setFieldError(promptRef, ''); });
  /** @param {import('../api.js').Prompt} p */
  function showPrompt(p) {
    prompt.value = p.prompt;
    promptState.textContent = p.is_default ? t('prompt_is_default') : t('prompt_is_custom');
    reset.disabled = p.is_default;
    updateHint();
  }
  promptForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const problem = checkPrompt(prompt.value);
    if (problem) {
      setFieldError(promptRef, problem === 'too_short' ? t('err_prompt_short', { min: PROMPT_MIN }) : t('err_prompt_long', { max: PROMPT_MAX }));
      prompt.focus();
      return;
    }
    save.disabled = true;
    try {
      showPrompt(await ctx.api.savePrompt(prompt.value.trim()));
      ctx.announce(t('saved'));
      promptState.textContent = `${promptState.textContent} ${t('saved')}`;
    } catch (err) {
      setFieldError(promptRef, errorText(err));
    } finally {
      save.disabled = false;
    }
  });
  reset.addEventListener('click', async () => {
    try {
      const p = await ctx.api.resetPrompt();
      if (p) showPrompt(p); else showPrompt(await ctx.api.prompt());
      ctx.announce(t('prompt_reset'));
      reset.focus();
    } catch (err) {
      setFieldError(promptRef, errorText(err));
    }
  });
  ctx.api.prompt().then(showPrompt).catch((err) => { promptState.textContent = errorText(err); });
  const promptSection = h('section', { class: 'card', 'aria-labelledby': 'prompt-h' }, [
    h('h2', { id: 'prompt-h', class: 'section-title', text: t('ai_summaries') }),
    h('p', { class: 'muted', text: t('prompt_explain') }),
    promptForm,
  ]);

  // Telegram
  const tgStatus = h('p', { role: 'status', class: 'tg-status' });
  const tgActions = h('div', { class: 'button-row' });
  /** @type {(() => void) | null} */
  let stopPoll = null;
  /** @param {import('../api.js').TelegramStatus} status @param {string} [deepLink] */
  function showTelegram(status, deepLink) {
    tgStatus.textContent = t(`telegram_${status}`);
    tgStatus.dataset.status = status;
    if (status === 'confirmed') {
      stopPoll?.();
      replace(tgActions, h('button', { type: 'button', class: 'danger', text: t('telegram_unlink'), onclick: unlink }));
    } else if (status === 'pending' && deepLink) {
      replace(tgActions,
        h('a', { href: deepLink, class: 'button primary', target: '_blank', rel: 'noopener noreferrer', text: t('telegram_open') }),
        h('button', { type: 'button', text: t('cancel'), onclick: unlink }));
    } else {
      replace(tgActions, h('button', { type: 'button', class: 'primary', text: t('telegram_link'), onclick: link }));
    }
  }
  async function link() {
    try {
      const l = await ctx.api.telegramLink();
      showTelegram('pending', l.deep_link);
      stopPoll?.();
      stopPoll = pollTelegram(ctx.api, (s) => { if (s !== 'pending') showTelegram(s); });
      tgActions.querySelector('a')?.focus();
    } catch (err) {
      // 404 `not_enabled`: this server has no Telegram bot.
      tgStatus.textContent = err instanceof ApiError && (err.code === 'not_enabled' || err.status === 503) ? t('telegram_unavailable') : errorText(err);
    }
  }
  async function unlink() {
    try {
      stopPoll?.();
      await ctx.api.telegramUnlink();
      showTelegram('absent');
      ctx.announce(t('telegram_absent'));
    } catch (err) {
      ctx.notify(errorText(err), 'error');
    }
  }
  ctx.api.telegramStatus().then((s) => showTelegram(s)).catch((err) => { tgStatus.textContent = errorText(err); });
  cleanups.push(() => stopPoll?.());
  const tgSection = h('section', { class: 'card', 'aria-labelledby': 'tg-h' }, [
    h('h2', { id: 'tg-h', class: 'section-title', text: 'Telegram' }),
    h('p', { class: 'muted', text: t('telegram_explain') }),
    tgStatus, tgActions,
  ]);

  // End-to-end encryption key of this browser
  const fp = h('code', { class: 'fingerprint', text: '…' });
  const rotate = h('button', { type: 'button', text: t('rotate_key') });
  const keyState = h('p', { role: 'status', class: 'muted' });
  ctx.dm.myFingerprint().then((f) => { fp.textContent = f ?? t('e2ee_unsupported'); }).catch((err) => { fp.textContent = errorText(err); });
  rotate.addEventListener('click', async () => {
    if (!confirm(t('confirm_rotate'))) return;
    try {
      fp.textContent = await ctx.dm.rotateKey();
      keyState.textContent = t('key_rotated');
    } catch (err) {
      keyState.textContent = errorText(err);
    }
  });
  const keySection = h('section', { class: 'card', 'aria-labelledby': 'key-h' }, [
    h('h2', { id: 'key-h', class: 'section-title', text: t('e2ee_key') }),
    h('p', { class: 'muted', text: t('e2ee_key_explain') }),
    h('p', {}, [t('your_key'), ': ', fp]),
    rotate, keyState,
  ]);

  const el = h('section', { class: 'page narrow' }, [heading, langSection, pushSection, promptSection, tgSection, keySection]);
  return { el, title: t('settings_title'), focus: heading, dispose: () => { for (const fn of cleanups) fn(); } };
}
