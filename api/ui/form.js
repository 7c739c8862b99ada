// The new-export form. It submits through POST /export/dump like any
// client and shows the server's error message as it is.

import { call, dbPath } from './api.js';
import { el, setText } from './dom.js';

export class ExportForm {
  constructor(form, onSubmitted) {
    this.form = form;
    this.db = form.querySelector('#f-database');
    this.tableList = form.querySelector('#f-table-list');
    this.error = form.querySelector('#form-error');
    this.ok = form.querySelector('#form-ok');
    this.submit = form.querySelector('#f-submit');
    this.databases = [];
    this.shownTables = '';
    this.onSubmitted = onSubmitted;
    this.db.addEventListener('change', () => this.renderTables());
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
  }

  // setDatabases refreshes the choices, keeping the user's selection.
  setDatabases(dbs) {
    this.databases = dbs;
    const current = this.db.value;
    const names = dbs.map((d) => d.name).join('\n');
    if (names !== this.shownNames) {
      this.shownNames = names;
      this.db.replaceChildren(...dbs.map((d) => el('option', { value: d.name }, d.name + (d.default && d.name !== 'default' ? ' (default)' : ''))));
      if (dbs.some((d) => d.name === current)) this.db.value = current;
    }
    this.renderTables();
  }

  renderTables() {
    const d = this.databases.find((x) => x.name === this.db.value);
    const tables = d && Array.isArray(d.tables) ? d.tables : [];
    const key = this.db.value + '\n' + tables.join('\n');
    if (key === this.shownTables) return;
    this.shownTables = key;
    const checked = new Set(this.checkedTables());
    const items = tables.map((t, i) => {
      const id = 'f-table-' + i;
      const box = el('input', { type: 'checkbox', id, value: t, checked: checked.has(t) });
      return el('div', { class: 'table-choice' }, box, el('label', { for: id }, t));
    });
    this.tableList.replaceChildren(...items);
    if (!items.length) this.tableList.append(el('p', { class: 'hint' }, 'This database has no tables.'));
  }

  checkedTables() {
    return Array.from(this.tableList.querySelectorAll('input[type=checkbox]:checked'), (b) => b.value);
  }

  async send() {
    const f = this.form.elements;
    const body = { format: f.format.value, compress: f.compress.value, consistency: f.consistency.value };
    const tables = this.checkedTables();
    if (tables.length) body.tables = tables;
    const chunk = f.chunkSize.value.trim();
    if (chunk) body.chunkSize = Number(chunk);
    for (const k of ['callbackUrl', 'key']) {
      const v = f[k].value.trim();
      if (v) body[k] = v;
    }
    if (f.verify.checked) body.verify = true;
    setText(this.error, '');
    setText(this.ok, '');
    this.submit.disabled = true;
    try {
      const r = await call('POST', dbPath(this.db.value, '/export/dump'), body);
      setText(this.ok, 'Export ' + (r && r.jobId) + ' queued.');
      this.onSubmitted();
    } catch (err) {
      setText(this.error, err.message);
    } finally {
      this.submit.disabled = false;
    }
  }
}
