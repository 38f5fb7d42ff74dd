// @ts-check
// Small DOM helpers for the views: elements are built with createElement and textContent,
// never from HTML strings, so user text can't become markup.

/**
 * @typedef {{[key: string]: string | number | boolean | null | undefined | ((ev: any) => void)}} Attrs
 * @typedef {Node | string | null | undefined | false} Child
 */

/**
 * Creates an element. `attrs`: `class`, `text`, `on<event>` listeners (functions), boolean
 * properties (`hidden`, `disabled`, …) and plain attributes; `null`/`undefined`/`false` skip.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {Child[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = String(value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/**
 * Replaces every child of `el`.
 * @param {Element} el
 * @param {Child[]} children
 */
export function replace(el, ...children) {
  el.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false).map((c) => /** @type {Node | string} */ (c)));
}

let uid = 0;
/** @param {string} prefix @returns {string} a unique element id */
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field with a place for its error (`aria-describedby`).
 * @param {{name: string, label: string, type?: string, value?: string, autocomplete?: string,
 *   required?: boolean, minlength?: number, maxlength?: number, hint?: string}} opts
 * @returns {{row: HTMLDivElement, input: HTMLInputElement, error: HTMLParagraphElement}}
 */
export function field(opts) {
  const id = newId(`f-${opts.name}`);
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const input = h('input', {
    id, name: opts.name, type: opts.type ?? 'text', autocomplete: opts.autocomplete ?? 'off',
    required: opts.required ?? false, minlength: opts.minlength, maxlength: opts.maxlength,
    'aria-describedby': opts.hint ? `${hintId} ${errorId}` : errorId,
  });
  if (opts.value) input.value = opts.value;
  const error = h('p', { id: errorId, class: 'field-error', hidden: true });
  const row = h('div', { class: 'field' }, [
    h('label', { for: id, text: opts.label }),
    input,
    opts.hint ? h('p', { id: hintId, class: 'hint', text: opts.hint }) : null,
    error,
  ]);
  return { row, input, error };
}

/**
 * Shows (or, with '', hides) a field's error and marks the input invalid.
 * @param {{input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, error: HTMLElement}} f
 * @param {string} message
 */
export function setFieldError(f, message) {
  f.error.textContent = message;
  f.error.hidden = !message;
  if (message) f.input.setAttribute('aria-invalid', 'true');
  else f.input.removeAttribute('aria-invalid');
}

/**
 * An inline SVG icon (no external file, no style attribute).
 * @param {'mic' | 'mic-off' | 'shield' | 'lock' | 'unlock'} name
 * @returns {SVGSVGElement}
 */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', `icon icon-${name}`);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  /** @type {Record<string, string[]>} */
  const paths = {
    mic: ['M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3z', 'M19 11a7 7 0 0 1-14 0M12 18v3'],
    'mic-off': ['M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3z', 'M19 11a7 7 0 0 1-14 0M12 18v3', 'M4 4l16 16'],
    shield: ['M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z'],
    lock: ['M6 11h12v10H6z', 'M8 11V7a4 4 0 0 1 8 0v4'],
    unlock: ['M6 11h12v10H6z', 'M8 11V7a4 4 0 0 1 7.5-2'],
  };
  for (const d of paths[name]) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

/**
 * Formats an RFC 3339 time for a message list: time today, else date and time.
 * @param {string} iso
 * @param {string} lang
 */
export function formatTime(iso, lang) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString(lang, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * Plain text with http(s) URLs turned into links; everything else (javascript:, data:, …)
 * stays text.
 * @param {string} text
 * @returns {(Node | string)[]}
 */
export function linkify(text) {
  /** @type {(Node | string)[]} */
  const out = [];
  const re = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  for (const m of text.matchAll(re)) {
    let url = m[0];
    // Trailing punctuation belongs to the sentence, not the link.
    const trail = /[.,;:!?)\]]+$/.exec(url);
    if (trail) url = url.slice(0, -trail[0].length);
    const start = m.index ?? 0;
    if (start > last) out.push(text.slice(last, start));
    let ok = false;
    try {
      const parsed = new URL(url);
      ok = parsed.protocol === 'http:' || parsed.protocol === 'https:';
    } catch { /* not a URL: text */ }
    out.push(ok ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: url }) : url);
    last = start + url.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
