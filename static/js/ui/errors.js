// @ts-check
// API errors in words: the server's code (and field) turned into a sentence in the UI
// language, shown next to the field it names.

import { ApiError } from '../api.js';
import { currentLang, has, t } from '../i18n.js';
import { setFieldError } from './dom.js';

/**
 * @param {unknown} err
 * @returns {string}
 */
export function errorText(err) {
  if (!(err instanceof ApiError)) return t('err_unexpected');
  if (err.code === 'network') return t('err_network');
  if (err.code === 'validation_failed' && err.field) {
    const key = `err_field_${err.field}`;
    // The server's message says exactly what is wrong, but in English.
    if (currentLang() === 'en' && err.message) return capitalise(err.message);
    if (has(key)) return t(/** @type {any} */ (key));
  }
  const key = `err_${err.code}`;
  if (has(key)) return t(/** @type {any} */ (key));
  if (err.status === 404) return t('err_not_found');
  if (err.status === 403) return t('err_forbidden');
  if (err.status >= 500) return t('err_server');
  return err.message ? capitalise(err.message) : t('err_unexpected');
}

/** @param {string} s */
function capitalise(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * @typedef {{input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, error: HTMLElement}} FieldRef
 */

/**
 * Shows `err` next to the field it names (`error.field`, or `fallbackField(code)`), else in
 * the form's own message. Focuses the field.
 * @param {unknown} err
 * @param {Record<string, FieldRef>} fields
 * @param {HTMLElement} formError
 * @param {(err: ApiError) => string | undefined} [fallbackField]
 */
export function showFormError(err, fields, formError, fallbackField) {
  const text = errorText(err);
  let name = err instanceof ApiError ? (err.field ?? fallbackField?.(err)) : undefined;
  const f = name ? fields[name] : undefined;
  if (f) {
    setFieldError(f, text);
    f.input.focus();
    formError.hidden = true;
  } else {
    formError.textContent = text;
    formError.hidden = false;
  }
}

/**
 * Clears every field error and the form's message.
 * @param {Record<string, FieldRef>} fields
 * @param {HTMLElement} formError
 */
export function clearFormErrors(fields, formError) {
  for (const f of Object.values(fields)) setFieldError(f, '');
  formError.textContent = '';
  formError.hidden = true;
}
