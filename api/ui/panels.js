// The databases and schedules panels: rebuilt on each refresh (they
// hold nothing to focus).

import { el, bytes, duration, time } from './dom.js';

function lastJob(j) {
  if (!j) return '—';
  const status = j.status === 'running' ? 'processing' : j.status;
  return status + ', ' + time(j.finishedAt || j.createdAt) + ' (' + j.jobId + ')';
}

export function renderDatabases(tbody, dbs) {
  tbody.replaceChildren(
    ...dbs.map((d) =>
      el(
        'tr',
        {},
        el('td', { 'data-label': 'Name' }, d.name + (d.default && d.name !== 'default' ? ' (default)' : '')),
        el('td', { 'data-label': 'Size' }, bytes(d.sizeBytes)),
        el('td', { 'data-label': 'WAL' }, bytes(d.walBytes)),
        el('td', { 'data-label': 'Tables' }, String(d.tableCount ?? (d.tables || []).length)),
        el('td', { 'data-label': 'Last export' }, lastJob(d.lastExport)),
      ),
    ),
  );
}

function retention(s) {
  const rules = [];
  if (s.keepLast) rules.push('keep last ' + s.keepLast);
  if (s.maxAgeSeconds) rules.push('max age ' + duration(s.maxAgeSeconds));
  return rules.length ? rules.join(', ') : 'keep all';
}

export function renderSchedules(tbody, empty, list) {
  tbody.replaceChildren(
    ...list.map((s) =>
      el(
        'tr',
        {},
        el('td', { 'data-label': 'Name' }, s.name),
        el('td', { 'data-label': 'Database' }, s.database),
        el('td', { 'data-label': 'Cron (UTC)' }, el('code', {}, s.cron)),
        el('td', { 'data-label': 'Next run' }, time(s.nextRun)),
        el('td', { 'data-label': 'Last run' }, s.lastJob ? lastJob(s.lastJob) : s.lastRun ? time(s.lastRun) : 'never'),
        el('td', { 'data-label': 'Retention' }, retention(s)),
      ),
    ),
  );
  empty.hidden = list.length > 0;
}
