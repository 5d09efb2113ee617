// Small DOM helpers and the one way every value, time and status is shown.

export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) element.addEventListener(key.slice(2), value);
    else if (key === 'class') element.className = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key === 'value') element.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') element[key] = Boolean(value);
    else element.setAttribute(key, value === true ? '' : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A stored value (result, payload, error), in full, as JSON: the same everywhere. */
export function value(data, label) {
  if (data === undefined) return h('span', { class: 'muted' }, '—');
  const text = JSON.stringify(data, null, 2);
  return h('pre', { class: 'json', tabindex: '0', 'aria-label': label || 'value' }, text);
}

export function statusBadge(status) {
  return h('span', { class: `badge s-${status}`, 'data-status': status }, status);
}

const pad = (n) => String(n).padStart(2, '0');

/** A time as "2026-12-03 14:05:09" in the viewer's zone, the UTC instant in its title. */
export function time(iso, { relative = true } = {}) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const when = new Date(iso);
  const local = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`;
  return h('time', { datetime: iso, title: when.toISOString() }, local, relative ? h('span', { class: 'muted rel' }, ` (${ago(when)})`) : null);
}

export function ago(when) {
  const seconds = (when.getTime() - Date.now()) / 1000;
  const size = Math.abs(seconds);
  const [amount, unit] = size < 60 ? [size, 's'] : size < 3600 ? [size / 60, 'min'] : size < 86400 ? [size / 3600, 'h'] : [size / 86400, 'd'];
  const shown = amount < 10 && unit !== 's' ? amount.toFixed(1) : Math.round(amount);
  return seconds >= 0 ? `in ${shown} ${unit}` : `${shown} ${unit} ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  const item = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null }, message,
    h('button', { type: 'button', class: 'ghost close', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×'));
  region.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 15000 : 5000);
}

/** Ask before an action that changes state; resolves true on Confirm. */
export function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
  });
}

/** Run an action: confirm (if asked), call, toast the outcome, refresh. */
export async function act({ confirm, run, done, refresh }) {
  if (confirm && !(await confirmAction(confirm))) return false;
  try {
    await run();
  } catch (error) {
    toast(error.message, 'error');
    return false;
  }
  if (done) toast(done, 'ok');
  if (refresh) await refresh();
  return true;
}

export function empty(title, hint) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), hint ? h('p', { class: 'muted' }, hint) : null);
}

export function failure(error, what) {
  return h('div', { class: 'empty error', role: 'alert' },
    h('p', { class: 'empty-title' }, `Could not load ${what}`),
    h('p', null, error.message),
    h('p', { class: 'muted' }, 'It retries by itself; check that the server and its database are up (/readyz).'));
}

export function parseJson(text, name) {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${name} is not valid JSON: ${error.message}`);
  }
}

export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', null, title) : null, ...children);
}

/** The current screen's path and query, from the URL's hash. */
export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

/** Change the query of the current screen without a reload (filters, paging). */
export function setParams(params) {
  const { path } = parseHash();
  const query = params.toString();
  history.replaceState(null, '', `#${path}${query ? `?${query}` : ''}`);
}
