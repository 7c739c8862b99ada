// The live jobs table. Rows are keyed by job id and updated in place,
// so a poll never steals focus from a button or resets a progress bar.

import { call, dbPath, url, token } from './api.js';
import { el, bytes, duration, time, toDate } from './dom.js';

function num(v) {
  return typeof v === 'number' && isFinite(v) ? v : 0;
}

// normalize reads a job in either wire shape: sluice's own (spec.database,
// progress.bytes, status "running") and the StarbaseDB one (database,
// progress.bytesWritten, status "processing").
export function normalize(j, db) {
  const p = j.progress || {};
  const spec = j.spec || {};
  const tables = Array.isArray(p.tables) ? p.tables : [];
  return {
    id: String(j.jobId),
    db: j.database || spec.database || db,
    format: j.format || spec.format || 'sql',
    compression: spec.compression || 'none',
    status: j.status === 'running' ? 'processing' : String(j.status),
    bytes: num(p.bytesWritten ?? p.bytes),
    rows: num(p.rowsDumped ?? p.rows),
    est: num(p.estimatedBytes),
    tablesDone: num(p.tablesDone ?? p.currentTableIndex),
    tablesTotal: num(p.tablesTotal) || tables.length,
    currentTable: typeof p.currentTable === 'string' ? p.currentTable : '',
    parts: num(p.partsUploaded),
    partsTotal: num(p.partsTotal),
    created: toDate(j.createdAt ?? p.startedAt),
    started: toDate(j.startedAt),
    finished: toDate(j.finishedAt ?? p.completedAt),
    resumed: num(j.resumed),
    consistency: j.consistency || spec.consistency || 'snapshot',
    verification: j.verification && typeof j.verification.status === 'string' ? j.verification : null,
    error: typeof j.error === 'string' ? j.error : '',
    statusUrl: j.statusUrl || url(dbPath(db, '/export/dump/status/' + encodeURIComponent(j.jobId))),
  };
}

// verifiedText is the verification badge: '—' for a job not asked to
// verify, else the outcome, with the first mismatch when it failed.
function verifiedText(v) {
  if (!v) return '—';
  if (v.status === 'passed') return 'passed (' + num(v.tables) + ' tables, ' + num(v.rows).toLocaleString() + ' rows)';
  if (v.status === 'failed' && v.mismatch && typeof v.mismatch.table === 'string') return 'failed: ' + v.mismatch.table;
  return String(v.status);
}

const active = (s) => s === 'queued' || s === 'processing';

// fraction is the job's progress from 0 to 1: bytes against the
// estimate when the output is not compressed (the estimate is of the
// uncompressed size), else tables done against tables.
export function fraction(j) {
  if (j.status === 'completed') return 1;
  if (j.compression === 'none' && j.est > 0) return Math.min(j.bytes / j.est, 0.99);
  if (j.tablesTotal > 0) return Math.min(j.tablesDone / j.tablesTotal, 0.99);
  return 0;
}

const columns = ['Job', 'Database', 'Format', 'Status', 'Rate', 'ETA', 'Parts', 'Started', 'Finished', 'Resumed', 'Consistency', 'Verified', 'Actions'];

export class JobsTable {
  constructor(tbody, empty, report) {
    this.tbody = tbody;
    this.empty = empty;
    this.report = report; // (message) => void, for action errors
    this.rows = new Map(); // id -> {tr, cells, job, status, samples}
    this.onChange = () => {};
  }

  update(jobs) {
    jobs.sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0) || (a.id < b.id ? 1 : -1));
    const seen = new Set();
    const now = Date.now();
    jobs.forEach((j) => {
      seen.add(j.id);
      let r = this.rows.get(j.id);
      if (!r) {
        r = this.makeRow(j);
        this.rows.set(j.id, r);
      }
      this.fill(r, j, now);
    });
    for (const [id, r] of this.rows) {
      if (!seen.has(id)) {
        r.tr.remove();
        this.rows.delete(id);
      }
    }
    // Reorder only when needed: moving a row blurs a focused button.
    const want = jobs.map((j) => this.rows.get(j.id).tr);
    const have = Array.from(this.tbody.children);
    if (want.length !== have.length || want.some((tr, i) => tr !== have[i])) {
      this.tbody.append(...want);
    }
    this.empty.hidden = jobs.length > 0;
  }

  makeRow(j) {
    const tr = el('tr', { 'data-job': j.id });
    const cells = {};
    for (const c of columns) {
      cells[c] = el('td', { 'data-label': c });
      tr.append(cells[c]);
    }
    cells.Job.append(el('code', {}, j.id));
    cells.bar = el('progress', { max: '100', value: '0', 'aria-label': 'progress of ' + j.id });
    cells.statusText = el('span', { class: 'status' });
    cells.pct = el('span', { class: 'pct' });
    cells.detail = el('span', { class: 'detail' });
    cells.Status.append(cells.statusText, ' ', cells.pct, el('br'), cells.bar, cells.detail);
    return { tr, cells, job: j, status: '', samples: [] };
  }

  fill(r, j, now) {
    const c = r.cells;
    r.job = j;
    c.Database.textContent = j.db;
    c.Format.textContent = j.format + (j.compression && j.compression !== 'none' ? ' + ' + j.compression : '');
    const f = fraction(j);
    const pct = Math.round(f * 100);
    c.statusText.textContent = j.status;
    c.statusText.className = 'status s-' + j.status.replace(/[^a-z]/g, '');
    c.pct.textContent = pct + '%';
    c.bar.value = pct;
    c.bar.setAttribute('aria-valuetext', pct + '%');
    let detail = bytes(j.bytes) + ', ' + j.rows.toLocaleString() + ' rows';
    if (j.tablesTotal) detail += ', table ' + Math.min(j.tablesDone + (active(j.status) ? 1 : 0), j.tablesTotal) + '/' + j.tablesTotal;
    if (j.currentTable && active(j.status)) detail += ' (' + j.currentTable + ')';
    if (j.error) detail += ' — ' + j.error;
    c.detail.textContent = detail;

    // Rate from the last polls (a short window smooths the jumps of
    // part-sized writes); ETA from the progress made since the start.
    r.samples.push([now, j.bytes]);
    r.samples = r.samples.filter(([t]) => now - t <= 10000);
    let rate = null;
    const [t0, b0] = r.samples[0];
    if (active(j.status) && now > t0 && j.bytes > b0) rate = ((j.bytes - b0) * 1000) / (now - t0);
    else if (j.started && j.bytes > 0) {
      const end = j.finished ? j.finished.getTime() : now;
      if (end > j.started.getTime()) rate = (j.bytes * 1000) / (end - j.started.getTime());
    }
    c.Rate.textContent = rate === null ? '—' : bytes(rate) + '/s';
    let eta = '—';
    if (j.status === 'processing' && j.started && f > 0 && f < 1) {
      const elapsed = (now - j.started.getTime()) / 1000;
      eta = duration((elapsed * (1 - f)) / f);
    } else if (j.status === 'completed') eta = 'done';
    c.ETA.textContent = eta;
    c.Parts.textContent = j.partsTotal ? j.parts + ' / ' + j.partsTotal : String(j.parts);
    c.Started.textContent = time(j.started || j.created);
    c.Finished.textContent = time(j.finished);
    c.Resumed.textContent = j.resumed ? j.resumed + '×' : 'no';
    c.Consistency.textContent = j.consistency;
    c.Verified.textContent = verifiedText(j.verification);
    c.Verified.className = j.verification ? 'v-' + j.verification.status.replace(/[^a-z]/g, '') : '';
    if (r.status !== j.status) {
      r.status = j.status;
      this.actions(r);
    }
  }

  actions(r) {
    const j = r.job;
    const cell = r.cells.Actions;
    cell.replaceChildren();
    if (active(j.status)) {
      const b = el('button', { type: 'button', class: 'cancel', 'aria-label': 'Cancel job ' + j.id }, 'Cancel');
      b.addEventListener('click', () => this.cancel(j, b));
      cell.append(b, ' ');
    }
    if (j.status === 'completed') {
      const path = dbPath(j.db, '/export/dump/download/' + encodeURIComponent(j.id));
      const a = el('a', { href: url(path), class: 'download', 'aria-label': 'Download job ' + j.id }, 'Download');
      a.addEventListener('click', (ev) => this.download(ev, r.job));
      cell.append(a, ' ');
    }
    const copy = el('button', { type: 'button', class: 'copy', 'aria-label': 'Copy status URL of job ' + j.id }, 'Copy status URL');
    copy.addEventListener('click', () => this.copy(r.job, copy));
    cell.append(copy);
  }

  async cancel(j, button) {
    button.disabled = true;
    try {
      await call('DELETE', dbPath(j.db, '/export/dump/' + encodeURIComponent(j.id)));
      this.onChange();
    } catch (err) {
      this.report('Cancel ' + j.id + ': ' + err.message);
      button.disabled = false;
    }
  }

  // download follows the link itself when no token is needed; with a
  // token (which a link cannot carry) it asks the status route for the
  // object's signed URL and follows that.
  async download(ev, j) {
    if (!token()) return;
    ev.preventDefault();
    try {
      const v = await call('GET', dbPath(j.db, '/export/dump/status/' + encodeURIComponent(j.id)));
      const direct = v.directUrl || v.downloadUrl;
      if (!direct) throw new Error('the server gave no download URL');
      const a = el('a', { href: direct, download: '' });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      this.report('Download ' + j.id + ': ' + err.message);
    }
  }

  async copy(j, button) {
    try {
      await navigator.clipboard.writeText(j.statusUrl);
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = 'Copy status URL'), 1500);
    } catch {
      // No clipboard outside a secure context: show it to copy by hand.
      this.report('Status URL of ' + j.id + ': ' + j.statusUrl);
    }
  }
}
