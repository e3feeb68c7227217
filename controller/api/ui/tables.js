// The summary line and the hosts, volumes and apps tables, from the API's
// JSON (GET /v1/status, /v1/hosts, /v1/volumes, /v1/apps).

import { el, badge, fmtAgo, fmtTime, replaceRows } from './dom.js';

const when = (s) => (s ? new Date(s) : null);

export function renderSummary(node, st) {
  // replaceChildren would print a null as "null": drop the absent parts.
  node.replaceChildren(...[
    el('span', { class: 'sum-host' }, 'host ', el('strong', {}, st.host),
      ' ', st.alive ? badge('ok', 'alive') : badge('bad', 'no current lease', 'this host has no lease in etcd: it refuses Mounts and self-fences')),
    el('span', {}, 'leader ', st.leader ? el('strong', {}, st.leader) : badge('bad', 'none', 'no host leads: nothing fails over')),
    el('span', {}, el('strong', {}, `${st.hostsAlive}/${st.hosts}`), ' hosts alive'),
    el('span', {}, el('strong', {}, String(st.volumes)), ' volumes'),
    el('span', {}, el('strong', {}, String(st.apps)), ' apps'),
    st.relocating > 0 ? el('span', {}, badge('warn', `${st.relocating} relocating`)) : null,
    el('span', { class: 'sum-version' }, `version ${st.version || '?'}`),
  ].filter(Boolean));
  document.title = `relocvol: ${st.host}`;
}

function hostState(h, now) {
  const out = [];
  if (h.fenced) {
    const at = when(h.fencedAt);
    out.push(badge('bad', `fenced by ${h.fencedBy || '?'}${at ? ` at ${fmtTime(at)}` : ''}`,
      'its storage was fenced; it rejoins once its plugin has cleaned up'));
  }
  out.push(h.alive ? badge('ok', 'alive') : badge('bad', 'dead', 'no lease in etcd'));
  if (h.maintenance) {
    const m = h.maintenance;
    const until = when(m.until);
    out.push(el('span', { class: 'maint' },
      badge('warn', `maintenance until ${fmtTime(until)} (${fmtAgo(until, now)})`, 'not failed over before its end'),
      ` ${m.reason ? `“${m.reason}”` : ''} by ${m.by}`));
  }
  return out;
}

// agent says whether apps may be placed on a host; a dead host's record
// (and so whether it runs an agent) is gone with its lease.
function agent(h) {
  if (!h.alive) return el('span', { class: 'dim' }, '—');
  if (h.agent) return 'yes';
  return el('span', { class: 'dim', title: 'no Docker engine configured: it serves volumes, apps are not placed on it' }, 'volumes only');
}

export function renderHosts(table, hosts, self) {
  const now = Date.now();
  replaceRows(table, hosts.map((h) => {
    const started = when(h.started);
    return el('tr', { 'data-host': h.name, class: h.alive ? '' : 'row-bad' },
      el('td', { class: 'name' }, h.name,
        h.leader ? badge('info', 'leader') : null,
        h.name === self ? badge('muted', 'this host') : null),
      el('td', {}, el('div', { class: 'state' }, hostState(h, now))),
      el('td', {}, h.alive ? `${Math.round(h.leaseAgeSeconds)} s ago` : '—'),
      el('td', {}, agent(h)),
      el('td', { class: 'num' }, String(h.apps)),
      el('td', { class: 'num' }, String(h.volumes)),
      el('td', { class: 'dim' }, started ? `up ${fmtAgo(started, now).replace(/ ago$/, '')}` : '—',
        h.version ? ` · ${h.version}` : ''));
  }), 'No host is registered: start the relocvol plugin on the Docker hosts.');
}

// growBadge says where a grown volume's filesystem is (relocvol volume
// grow): nothing once it has the new size, else growing, waiting for the
// next mount, or failed, with the detail as the tooltip.
function growBadge(g) {
  if (!g || g.filesystem === 'grown') return null;
  const from = `grown from ${g.fromHuman}`;
  switch (g.filesystem) {
    case 'growing': return [' ', badge('warn', 'growing', `${from}: host ${g.host} grows its filesystem`)];
    case 'next-mount': return [' ', badge('warn', 'grows at next mount', `${from}: ${g.detail || ''}`)];
  }
  return [' ', badge('bad', 'grow failed', `${from}: ${g.detail || ''}`)];
}

export function renderVolumes(table, volumes) {
  replaceRows(table, volumes.map((v) => el('tr', { 'data-volume': v.name },
    el('td', { class: 'name' }, v.name),
    el('td', {}, v.owner
      ? [v.owner, v.ownerAlive ? null : badge('bad', 'owner dead', 'its owner has no lease: the leader fences it and releases the volume')]
      : el('span', { class: 'dim' }, 'released')),
    el('td', { class: 'num' }, String(v.epoch)),
    el('td', { class: 'num' }, String(v.mounts)),
    el('td', { class: 'num' }, v.sizeHuman, growBadge(v.grow)),
    el('td', {}, v.fs),
    el('td', {}, v.backend),
    el('td', {}, v.state === 'ready' ? badge('ok', v.state) : badge('warn', v.state || '?')),
    el('td', { class: 'dim' }, v.createdBy ? `${v.createdBy}, ${fmtTime(new Date(v.createdAt))}` : '—'),
  )), 'No volume yet: docker volume create -d relocvol NAME');
}

export function renderApps(table, apps) {
  const now = Date.now();
  replaceRows(table, apps.map((a) => {
    const r = a.relocation;
    let running;
    if (a.actualHost) running = a.actualHost;
    else if (a.stopped) running = badge('muted', 'stopped by the user');
    else running = badge(r ? 'warn' : 'bad', 'not running');
    return el('tr', { 'data-app': a.name },
      el('td', { class: 'name' }, a.name),
      el('td', { class: 'mono' }, a.image),
      el('td', {}, (a.volumes || []).join(', ')),
      el('td', {}, a.desiredHost,
        a.allowed && a.allowed.length ? el('span', { class: 'dim' }, ` (allowed: ${a.allowed.join(', ')})`) : null),
      el('td', {}, running),
      el('td', { class: 'reloc' }, r
        ? el('a', { href: `#rel-${r.id}` }, badge('warn', `${r.kind} ${r.from} → ${r.to || '?'}`),
          ` since ${fmtTime(new Date(r.started))} (${fmtAgo(new Date(r.started), now).replace(/ ago$/, '')})`)
        : el('span', { class: 'dim' }, '—')));
  }), 'No app: relocvol relocates containers labelled relocvol.relocate=true that use relocvol volumes.');
}
