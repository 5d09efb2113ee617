// The dashboard's only way to the server: its HTTP API, same origin, session cookie.
const base = document.querySelector('meta[name="zart-base"]').content;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function url(path, params) {
  const target = new URL(base + path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    for (const one of Array.isArray(value) ? value : [value]) target.searchParams.append(key, one);
  }
  return target;
}

export async function call(method, path, { params, body, raw } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { 'X-Zart-Dashboard': '1', Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, params), init);
  } catch (error) {
    throw new ApiError(0, 'unreachable', `The server did not answer (${error.message}). Is zart serve running?`);
  }
  if (response.status === 401) {
    location.reload(); // the session ended: the page shows the sign-in form
    throw new ApiError(401, 'unauthorized', 'Signed out: sign in again.');
  }
  if (!response.ok) {
    let code = 'error';
    let message = `${response.status} ${response.statusText}`;
    try {
      const envelope = await response.json();
      code = envelope.error.code;
      message = envelope.error.message;
    } catch (_) { /* not an envelope */ }
    throw new ApiError(response.status, code, message);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, params) => call('GET', path, { params });
export const post = (path, body) => call('POST', path, { body });
export const put = (path, body) => call('PUT', path, { body });
export const del = (path, params) => call('DELETE', path, { params });

export async function page(path, params) {
  const response = await call('GET', path, { params, raw: true });
  return { items: await response.json(), total: Number(response.headers.get('X-Total-Count') || 0) };
}

export const enc = encodeURIComponent;
