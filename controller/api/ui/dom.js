// Small helpers shared by the page's modules. Data from the API only ever
// reaches the page as text (textContent, attribute values): never as HTML,
// so a host, app or error message cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg'; // a namespace name, never fetched

// el makes an HTML element: attrs are attributes (class, data-*, hidden as
// true), children are nodes or strings (text nodes); null and false are
// skipped, so conditional parts read naturally.
export function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// svg is el for SVG elements.
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return node;
}

// badge is a small coloured label; kind is one of ok, bad, warn, info, muted.
export function badge(kind, text, title) {
  return el('span', { class: `badge badge-${kind}`, title }, text);
}

// fmtDuration: 12 ms, 2.4 s, 1 min 5 s, 2 h 3 min.
export function fmtDuration(ms) {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  const h = Math.floor(s / 3600);
  return h < 48 ? `${h} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(h / 24)} days`;
}

// fmtAgo: "3 s ago", "in 25 min 4 s", in whole seconds.
export function fmtAgo(date, now = Date.now()) {
  const s = Math.round((now - date.getTime()) / 1000);
  if (s === 0) return 'just now';
  const text = Math.abs(s) < 60 ? `${Math.abs(s)} s` : fmtDuration(Math.abs(s) * 1000);
  return s > 0 ? `${text} ago` : `in ${text}`;
}

// fmtTime: the local wall-clock time, with the date when it is not today.
export function fmtTime(date) {
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

// replaceRows puts rows into a table's body, or one row saying why it is
// empty.
export function replaceRows(table, rows, empty) {
  const body = table.tBodies[0];
  const cols = table.tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: cols }, empty))]));
}
