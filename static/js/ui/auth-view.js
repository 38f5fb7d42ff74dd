// @ts-check
// Sign in and register. Errors appear next to the field they concern.

import { ApiError } from '../api.js';
import { t } from '../i18n.js';
import { field, h, newId, setFieldError } from './dom.js';
import { clearFormErrors, showFormError } from './errors.js';

/**
 * @param {import('./shell.js').AppContext} ctx
 * @returns {import('./shell.js').View}
 */
export function renderAuth(ctx) {
  const params = new URLSearchParams(location.search);
  const next = params.get('next');
  let mode = params.get('mode') === 'register' ? 'register' : 'login';

  const heading = h('h1', { tabindex: '-1' });
  const notice = ctx.takeExpiredNotice();
  const noticeEl = h('p', { class: 'notice', role: 'status', hidden: !notice, text: notice });

  const username = field({ name: 'username', label: t('username'), autocomplete: 'username', required: true, maxlength: 32 });
  const password = field({ name: 'password', label: t('password'), type: 'password', autocomplete: 'current-password', required: true });
  const secret = field({ name: 'registration_secret', label: t('registration_secret'), type: 'password', autocomplete: 'off', hint: t('registration_secret_hint') });
  const rememberId = newId('remember');
  const remember = h('input', { type: 'checkbox', id: rememberId, name: 'remember' });
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' });
  const switchButton = h('button', { type: 'button', class: 'link-button' });
  const switchText = h('p', { class: 'switch' });

  /** @type {Record<string, import('./errors.js').FieldRef>} */
  const fields = { username, password, registration_secret: secret };

  const form = h('form', { class: 'card auth-form', novalidate: true }, [
    username.row, password.row, secret.row,
    h('div', { class: 'check' }, [remember, h('label', { for: rememberId, text: t('remember_me') })]),
    formError,
    submit,
  ]);

  function applyMode() {
    const reg = mode === 'register';
    heading.textContent = reg ? t('register_title') : t('sign_in_title');
    secret.row.hidden = !reg;
    password.input.autocomplete = reg ? 'new-password' : 'current-password';
    submit.textContent = reg ? t('register') : t('sign_in');
    switchText.replaceChildren(reg ? t('have_account') : t('no_account'), ' ', switchButton);
    switchButton.textContent = reg ? t('sign_in') : t('register');
    clearFormErrors(fields, formError);
  }

  switchButton.addEventListener('click', () => {
    mode = mode === 'register' ? 'login' : 'register';
    applyMode();
    username.input.focus();
  });

  /** @returns {boolean} */
  function validate() {
    let ok = true;
    const name = username.input.value.trim();
    if (!name) { setFieldError(username, t('err_required')); ok = false; }
    else if (mode === 'register' && !/^[A-Za-z0-9_.-]{3,32}$/.test(name)) { setFieldError(username, t('err_field_username')); ok = false; }
    if (!password.input.value) { setFieldError(password, t('err_required')); ok = false; }
    else if (mode === 'register' && password.input.value.length < 8) { setFieldError(password, t('err_field_password')); ok = false; }
    if (mode === 'register' && !secret.input.value) { setFieldError(secret, t('err_required')); ok = false; }
    if (!ok) form.querySelector('[aria-invalid="true"]')?.closest('.field')?.querySelector('input')?.focus();
    return ok;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(fields, formError);
    noticeEl.hidden = true;
    if (!validate()) return;
    submit.disabled = true;
    try {
      const name = username.input.value.trim();
      const info = mode === 'register'
        ? await ctx.api.register(name, password.input.value, secret.input.value)
        : await ctx.api.login(name, password.input.value);
      ctx.session.start(info, remember.checked);
      ctx.router.navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    } catch (err) {
      showFormError(err, fields, formError, (e) => {
        if (e.code === 'invalid_credentials') return 'password';
        if (e.code === 'username_taken') return 'username';
        if (e.status === 403 && mode === 'register') return 'registration_secret';
        return undefined;
      });
      if (err instanceof ApiError && err.status === 403 && mode === 'register') setFieldError(secret, t('err_wrong_secret'));
    } finally {
      submit.disabled = false;
    }
  });

  applyMode();
  const el = h('section', { class: 'page narrow auth' }, [
    heading,
    h('p', { class: 'lead', text: t('tagline') }),
    noticeEl,
    form,
    switchText,
  ]);
  return { el, title: mode === 'register' ? t('register_title') : t('sign_in_title'), dispose: () => {}, focus: heading };
}
