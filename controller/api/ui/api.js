// The page's side of the REST API: the bearer token, GETs with a time
// limit, and the NDJSON event stream.
//
// The token comes from the page's URL fragment (http://host:7480/#token=…:
// browsers never send a fragment to the server, nor in a Referer) or from
// the form the page shows after a 401. It is kept in sessionStorage (this
// tab only, gone when it closes) and the fragment is removed from the
// address bar, so it does not linger in the history or a shared link.

const TOKEN_KEY = 'relocvol.token';
const REQUEST_TIMEOUT_MS = 15000; // longer than the store's 5 s per etcd call

export function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = params.get('token');
  if (token === null) return;
  setToken(token);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// ApiError is a failed API call: status 0 when the API did not answer.
export class ApiError extends Error {
  constructor(path, status, message) {
    super(message);
    this.path = path;
    this.status = status;
  }
}

// request GETs path with the token and returns the response once it
// answered 2xx; anything else is an ApiError that says what went wrong.
async function request(path, signal) {
  const headers = { Accept: 'application/json, application/x-ndjson' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, { headers, signal, cache: 'no-store' });
  } catch (err) {
    if (signal && signal.aborted && signal.reason instanceof ApiError) throw signal.reason;
    throw new ApiError(path, 0, `cannot reach the relocvol API at ${location.host} (${err.message}): ` +
      'is the plugin running and enabled on this host (docker plugin ls)?');
  }
  if (resp.ok) return resp;
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) message = body.error;
  } catch (_) { /* not JSON: keep the status line */ }
  throw new ApiError(path, resp.status, message);
}

// getJSON GETs path and decodes it, failing after REQUEST_TIMEOUT_MS.
export async function getJSON(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new ApiError(path, 0,
    `the relocvol API at ${location.host} did not answer ${path} within ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
  try {
    const resp = await request(path, ctl.signal);
    return await resp.json();
  } catch (err) {
    if (ctl.signal.aborted && ctl.signal.reason instanceof ApiError) throw ctl.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// followEvents streams GET /v1/events?follow=true: onOpen once the API
// answered, then onEvent for each event (the listed ones first, then each
// new one as it is written). It returns or throws when the stream ends:
// the server's last line is {"error": …} when it fails, a plain end means
// the connection closed; either way the caller reconnects.
export async function followEvents(limit, signal, onOpen, onEvent) {
  const path = `/v1/events?follow=true&limit=${limit}`;
  const resp = await request(path, signal);
  onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new ApiError(path, 0, 'the API ended the event stream');
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const obj = JSON.parse(line);
      if (!obj.phase && obj.error) throw new ApiError(path, 500, `the event stream failed: ${obj.error}`);
      onEvent(obj);
    }
  }
}
