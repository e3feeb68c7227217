// The status page: the tables refreshed every 2 s from the JSON API, the
// relocations' timelines kept up to date from the event stream, the bearer
// token, and what the page says when the API does not answer (the last
// data stays, marked stale).

import { ApiError, followEvents, getJSON, getToken, setToken, takeTokenFromFragment } from './api.js';
import { el, fmtAgo, fmtTime } from './dom.js';
import { renderApps, renderHosts, renderSummary, renderVolumes } from './tables.js';
import { groupRelocations, relocationCard } from './timeline.js';

const REFRESH_MS = 2000;
const STALE_MS = 3 * REFRESH_MS; // no fresh data for this long: stale
const EVENT_LIMIT = 300; // events asked for (re)connecting the stream
const EVENTS_KEPT = 3000; // events kept in the page
const RELOCATIONS_SHOWN = 10;

const $ = (id) => document.getElementById(id);

const state = {
  data: null, // {status, hosts, volumes, apps}, the last complete answer
  lastOk: 0, // when data was read
  refreshError: null, // the last refresh's ApiError, null when it worked
  events: new Map(), // key → event
  stream: 'connecting', // connecting, live or reconnecting
  streamError: null,
  needToken: false,
};

// ---- waiting, and waking up early when a token is entered ----

const sleepers = new Set();
function sleep(ms) {
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); sleepers.delete(done); resolve(); };
    const timer = setTimeout(done, ms);
    sleepers.add(done);
  });
}
const wakeAll = () => [...sleepers].forEach((f) => f());

// ---- the tables ----

async function refresh() {
  try {
    const [status, hosts, volumes, apps] = await Promise.all(
      ['/v1/status', '/v1/hosts', '/v1/volumes', '/v1/apps'].map(getJSON));
    state.data = { status, hosts, volumes, apps };
    state.lastOk = Date.now();
    state.refreshError = null;
    renderData();
  } catch (err) {
    if (!(err instanceof ApiError)) {
      // A bug of the page, not the API: say so, log it, keep refreshing.
      state.refreshError = new ApiError('', 0, `the page failed to show the data (${err.message}): reload it; if it persists, report it with the browser console's output`);
      reportError(err);
    } else if (err.status === 401) {
      askToken();
      return;
    } else {
      state.refreshError = err;
    }
  }
  renderHealth();
}

async function refreshLoop() {
  for (;;) {
    if (!state.needToken) await refresh();
    await sleep(REFRESH_MS);
  }
}

function renderData() {
  const d = state.data;
  const shown = !$('data').hidden;
  $('data').hidden = !d;
  if (!d) return;
  if (!shown) renderTimelines(); // drawn while hidden, at no width
  renderSummary($('summary'), d.status);
  renderHosts($('hosts'), d.hosts, d.status.host);
  renderVolumes($('volumes'), d.volumes);
  renderApps($('apps'), d.apps);
  for (const [id, n] of [['hosts-count', d.hosts.length], ['volumes-count', d.volumes.length], ['apps-count', d.apps.length]]) {
    $(id).textContent = String(n);
  }
}

// ---- the timelines, from the event stream ----

let streamAbort = null;

async function streamLoop() {
  let backoff = 1000;
  for (;;) {
    if (state.needToken) {
      await sleep(60000);
      continue;
    }
    streamAbort = new AbortController();
    try {
      await followEvents(EVENT_LIMIT, streamAbort.signal, () => {
        state.stream = 'live';
        state.streamError = null;
        backoff = 1000;
        renderHealth();
      }, addEvent);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        askToken();
        continue;
      }
      state.stream = 'reconnecting';
      state.streamError = streamAbort.signal.aborted ? null : err;
      renderHealth();
    }
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 10000);
  }
}

// An event's key is its etcd key's parts: a reconnected stream lists
// again the events already shown.
const eventKey = (e) => `${e.at}|${e.host}|${e.phase}|${e.relocation}`;

function addEvent(e) {
  state.events.set(eventKey(e), e);
  if (state.events.size > EVENTS_KEPT) {
    const oldest = [...state.events.entries()].sort((a, b) => Date.parse(a[1].at) - Date.parse(b[1].at));
    for (const [k] of oldest.slice(0, state.events.size - EVENTS_KEPT)) state.events.delete(k);
  }
  scheduleTimelines();
}

let timelineTimer = null;
function scheduleTimelines() {
  // The stream lists hundreds of events at once: draw once after them.
  if (timelineTimer === null) timelineTimer = setTimeout(renderTimelines, 30);
}

function renderTimelines() {
  timelineTimer = null;
  const list = $('relocation-list');
  const events = [...state.events.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const rels = groupRelocations(events).slice(0, RELOCATIONS_SHOWN);
  $('relocations-count').textContent = String(rels.length);
  if (rels.length === 0) {
    list.replaceChildren(el('p', { class: 'empty' }, 'No relocation recorded yet: a move (relocvol move APP HOST) or a failover shows here as it happens.'));
    return;
  }
  const width = Math.max(560, list.clientWidth - 34);
  list.replaceChildren(...rels.map((r) => relocationCard(r, width)));
}

// ---- the token ----

function askToken() {
  const refused = getToken() !== '';
  state.needToken = true;
  state.data = null;
  state.events.clear();
  if (streamAbort) streamAbort.abort();
  $('summary').replaceChildren();
  for (const t of ['hosts', 'volumes', 'apps']) $(t).tBodies[0].replaceChildren();
  $('relocation-list').replaceChildren();
  renderData();
  const form = $('token-form');
  form.hidden = false;
  const where = 'the file api-token in the plugin\'s state folder, /var/lib/relocvol/api-token, readable by root, ' +
    'or the host\'s RELOCVOL_API_TOKEN; the read-only api-token-read shows the page too';
  $('token-why').textContent = refused
    ? `The API answered 401: the token was refused. Enter this host's API token (${where}).`
    : `The API answered 401: it requires a token. Enter this host's API token (${where}), or open the page as ` +
      `${location.origin}/#token=TOKEN.`;
  $('token-input').focus();
  renderHealth();
}

function onTokenSubmit(ev) {
  ev.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) return;
  setToken(token);
  $('token-input').value = '';
  $('token-form').hidden = true;
  state.needToken = false;
  state.stream = 'connecting';
  renderHealth();
  wakeAll();
}

// ---- health: live, stale, errors ----

function renderHealth() {
  const now = Date.now();
  const conn = $('conn');
  const banner = $('banner');
  const stale = state.data !== null && (state.refreshError !== null || now - state.lastOk > STALE_MS);
  $('data').classList.toggle('stale', stale);
  $('summary').classList.toggle('stale', stale);
  let kind;
  let text;
  if (state.needToken) {
    [kind, text] = ['bad', 'waiting for the API token'];
  } else if (!state.data) {
    [kind, text] = state.refreshError ? ['bad', 'no data'] : ['muted', 'connecting…'];
  } else if (stale) {
    [kind, text] = ['bad', `stale: data of ${fmtTime(new Date(state.lastOk))}`];
  } else {
    kind = state.stream === 'live' ? 'ok' : 'warn';
    text = `${state.stream === 'live' ? 'live' : 'live updates reconnecting'} · updated ${fmtAgo(new Date(state.lastOk), now)}`;
  }
  conn.className = `conn conn-${kind}`;
  conn.textContent = text;

  const problems = [];
  if (state.refreshError) {
    const e = state.refreshError;
    problems.push(e.status
      ? `The API answered ${e.status} to ${e.path}: ${e.message}`
      : e.message);
    problems.push(state.data
      ? `The tables below show the data of ${fmtTime(new Date(state.lastOk))} (stale); retrying every ${REFRESH_MS / 1000} s.`
      : `Retrying every ${REFRESH_MS / 1000} s.`);
  }
  if (state.streamError && !state.needToken) {
    problems.push(`Live timeline updates interrupted (${state.streamError.message}); reconnecting.`);
  }
  banner.hidden = problems.length === 0;
  banner.replaceChildren(...problems.map((p) => el('p', {}, p)));
}

// ---- start ----

takeTokenFromFragment();
$('token-form').addEventListener('submit', onTokenSubmit);
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(renderTimelines, 100);
});
setInterval(renderHealth, 1000);
renderTimelines();
refreshLoop();
streamLoop();
