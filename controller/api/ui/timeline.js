// The relocations' timelines: events grouped by relocation ID, each drawn
// as an SVG chart with one bar per step, from the moment the step began
// (sinceStartMs - tookMs) to the moment it ended (sinceStartMs), on an axis
// in seconds from the relocation's start, so that the chart shows where
// the seconds went.

import { el, svg, badge, fmtDuration, fmtTime } from './dom.js';

// groupRelocations turns events (oldest first) into relocations, newest
// first: id, kind, app, from, to, start (a Date), steps (in the order they
// happened), totalMs and state (done, failed, stuck or running).
export function groupRelocations(events) {
  const byId = new Map();
  for (const e of events) {
    if (!e.relocation) continue;
    let r = byId.get(e.relocation);
    if (!r) {
      r = { id: e.relocation, kind: e.kind, app: e.app, from: '', to: '', steps: [], startMs: Infinity };
      byId.set(e.relocation, r);
    }
    r.steps.push(e);
    r.from = e.from || r.from;
    r.to = e.to || r.to;
    r.startMs = Math.min(r.startMs, Date.parse(e.at) - (e.sinceStartMs || 0));
  }
  const out = [...byId.values()];
  for (const r of out) {
    r.steps.sort(stepOrder);
    r.start = new Date(r.startMs);
    r.totalMs = Math.max(0, ...r.steps.map((s) => s.sinceStartMs || 0));
    const last = r.steps[r.steps.length - 1].phase;
    // A refused start (a record no agent signed) ends it as a failure.
    r.state = r.steps.some((s) => s.phase === 'done') ? 'done'
      : last === 'failed' || last === 'stuck' ? last : last === 'refused' ? 'failed' : 'running';
  }
  return out.sort((a, b) => b.startMs - a.startMs);
}

// stepOrder is the order steps happened in: by time, then by when they
// ended in the relocation; the final step (done, failed, stuck, refused)
// last among steps of the same moment.
const FINAL = new Set(['done', 'failed', 'stuck', 'refused']);
function stepOrder(a, b) {
  return Date.parse(a.at) - Date.parse(b.at) || (a.sinceStartMs || 0) - (b.sinceStartMs || 0) ||
    FINAL.has(a.phase) - FINAL.has(b.phase);
}

// The phases' colours (CSS classes), by what the step waits for.
const PHASE_GROUP = {
  requested: 'detect', detected: 'detect',
  fenced: 'fence',
  placed: 'place',
  stopped: 'release', released: 'release',
  pulled: 'start', created: 'start', started: 'start',
  claimed: 'storage', activated: 'storage', mounted: 'storage',
  done: 'done',
  failed: 'error', stuck: 'error', refused: 'error',
};

// Layout, in pixels.
const LABEL_W = 200; // phase and host, left of the plot
const RIGHT_W = 120; // room for the last bar's duration
const ROW_H = 24;
const BAR_H = 14;
const AXIS_H = 24;

// tickStep is the spacing of the axis' ticks: whole seconds (or half a
// second for very short relocations), at least ~70 px apart.
function tickStep(totalMs, plotW) {
  const steps = [500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000];
  const most = Math.max(1, Math.floor(plotW / 70));
  return steps.find((s) => totalMs / s <= most) || steps[steps.length - 1];
}

// chart draws one relocation's steps in width pixels.
function chart(r, width) {
  const plotW = Math.max(120, width - LABEL_W - RIGHT_W);
  const step = tickStep(r.totalMs, plotW);
  const domainMs = Math.max(step, Math.ceil(r.totalMs / step) * step);
  const x = (ms) => LABEL_W + (Math.max(0, ms) / domainMs) * plotW;
  const height = AXIS_H + r.steps.length * ROW_H + 6;
  const root = svg('svg', {
    class: 'tl', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `timeline of ${r.kind} ${r.id}: ${r.steps.length} steps, ${fmtDuration(r.totalMs)}`,
  });

  for (let t = 0; t <= domainMs; t += step) {
    root.append(
      svg('line', { class: 'tl-grid', x1: x(t), x2: x(t), y1: AXIS_H - 4, y2: height - 4 }),
      svg('text', { class: 'tl-tick', x: x(t), y: AXIS_H - 9, 'text-anchor': 'middle' }, tickLabel(t, step)),
    );
  }

  r.steps.forEach((s, i) => {
    const y = AXIS_H + i * ROW_H;
    const mid = y + ROW_H / 2;
    const end = s.sinceStartMs || 0;
    const took = Math.max(0, s.tookMs || 0);
    const failed = Boolean(s.error);
    const group = failed ? 'error' : (PHASE_GROUP[s.phase] || 'other');
    const g = svg('g', {
      class: `tl-step${failed ? ' tl-failed' : ''}`, 'data-phase': s.phase, 'data-host': s.host,
      'data-took-ms': took, 'data-since-start-ms': end, 'data-failed': failed ? 'true' : 'false',
    });
    g.append(svg('title', {}, stepTitle(s)));
    if (i % 2 === 1) g.append(svg('rect', { class: 'tl-stripe', x: 0, y, width, height: ROW_H }));
    g.append(svg('text', { class: 'tl-label', x: LABEL_W - 10, y: mid + 4, 'text-anchor': 'end' },
      svg('tspan', { class: 'tl-phase' }, failed ? `✗ ${s.phase}` : s.phase),
      svg('tspan', { class: 'tl-host' }, ` on ${s.host}`)));
    let right = x(end);
    if (took > 0) {
      const x0 = x(end - took);
      const w = Math.max(1.5, x(end) - x0);
      g.append(svg('rect', { class: `tl-bar tl-${group}`, x: x0, y: mid - BAR_H / 2, width: w, height: BAR_H, rx: 2 }));
      right = x0 + w;
    } else {
      // An instant (a detection, a request): a diamond where it happened.
      const d = BAR_H / 2;
      g.append(svg('path', { class: `tl-mark tl-${group}`, d: `M${right} ${mid - d}l${d} ${d}l${-d} ${d}l${-d} ${-d}z` }));
      right += d;
    }
    let text = took > 0 ? fmtDuration(took) : `at ${fmtDuration(end)}`;
    if (s.phase === 'done') text = `${text} in all`;
    const room = width - right;
    const label = failed ? `${text}, failed` : text;
    g.append(room > label.length * 7 + 8
      ? svg('text', { class: 'tl-took', x: right + 6, y: mid + 4 }, label)
      : svg('text', { class: 'tl-took tl-took-inside', x: right - 6, y: mid + 4, 'text-anchor': 'end' }, label));
    root.append(g);
  });
  return root;
}

function tickLabel(ms, step) {
  if (step < 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (step < 60000) return `${ms / 1000} s`;
  return `${ms / 60000} min`;
}

function stepTitle(s) {
  const took = Math.max(0, s.tookMs || 0);
  const lines = [`${s.phase} on ${s.host}: ${took > 0 ? `took ${fmtDuration(took)}, ` : ''}ended ${fmtDuration(s.sinceStartMs || 0)} after the start (${fmtTime(new Date(s.at))})`];
  if (s.detail) lines.push(s.detail);
  if (s.error) lines.push(`error: ${s.error}`);
  return lines.join('\n');
}

const STATE_BADGE = {
  done: ['ok', 'done'],
  failed: ['bad', 'failed'],
  stuck: ['bad', 'stuck'],
  running: ['warn', 'in progress'],
};

// relocationCard is a relocation's heading, chart and failed steps.
export function relocationCard(r, width) {
  const [kind, text] = STATE_BADGE[r.state];
  const failures = r.steps.filter((s) => s.error);
  return el('article', { class: `relocation state-${r.state}`, id: `rel-${r.id}`, 'data-relocation': r.id },
    el('header', { class: 'rel-head' },
      el('span', { class: 'rel-kind' }, r.kind || 'relocation'),
      el('strong', { class: 'rel-app' }, r.app),
      el('span', { class: 'rel-path' }, `${r.from || '?'} → ${r.to || 'not placed yet'}`),
      badge(kind, text),
      el('span', { class: 'rel-meta' },
        `started ${fmtTime(r.start)} · ${r.state === 'running' ? 'so far' : 'total'} `,
        el('strong', { class: 'rel-total' }, fmtDuration(r.totalMs)),
        ` · ${r.steps.length} steps · `, el('code', {}, r.id))),
    el('div', { class: 'rel-chart' }, chart(r, width)),
    failures.length > 0 && el('ul', { class: 'rel-errors' }, failures.map((s) =>
      el('li', {}, el('strong', {}, `${s.phase} on ${s.host} failed`), ` after ${fmtDuration(Math.max(0, s.tookMs || 0))}: `,
        el('span', { class: 'rel-error' }, s.error)))));
}
