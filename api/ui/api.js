// The console's one door to the server: every call goes through call(),
// which adds the token, unwraps the {"result": …} envelope when the
// server sends one, and turns any error body into an ApiError whose
// message is the server's own text.

const TOKEN_KEY = 'sluice.token';

// The API's root: the console lives at <root>/ui/, so a reverse proxy
// that mounts sluice under a prefix keeps working.
export const root = new URL('..', document.baseURI);

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code || '';
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let onAuth = () => {};

// onUnauthorized sets what a 401 triggers (showing the sign-in form).
export function onUnauthorized(fn) {
  onAuth = fn;
}

// url builds an absolute URL for an API path such as "/databases".
export function url(path) {
  return new URL(path.replace(/^\//, ''), root).href;
}

// dbPath is the path of a per-database route: /db/<name><rest>.
export function dbPath(db, rest) {
  return '/db/' + encodeURIComponent(db) + rest;
}

// errorMessage reads both error shapes: {"error": "text"} and
// {"error": {"message": "text"}}.
function errorMessage(body, status) {
  const e = body && body.error;
  if (typeof e === 'string') return [e, body.code];
  if (e && typeof e.message === 'string') return [e.message, e.code];
  return ['HTTP ' + status, ''];
}

// call sends a request and returns the payload (the envelope's result
// when there is one). body, when given, is sent as JSON.
export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url(path), init);
  } catch (err) {
    throw new ApiError(0, 'cannot reach the server (' + err.message + ')');
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const [msg, code] = errorMessage(data, resp.status);
    const err = new ApiError(resp.status, msg, code);
    if (resp.status === 401) onAuth(err);
    throw err;
  }
  if (data && typeof data === 'object' && !Array.isArray(data) && 'result' in data) {
    return data.result;
  }
  return data;
}
