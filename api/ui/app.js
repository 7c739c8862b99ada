// The console's entry point: sign-in, and the refresh loops. Jobs are
// polled every POLL_MS while the tab is visible (a hidden tab costs the
// server nothing); databases and schedules every SLOW_MS.

import { call, dbPath, onUnauthorized, setToken, token } from './api.js';
import { setText } from './dom.js';
import { JobsTable, normalize } from './jobs.js';
import { ExportForm } from './form.js';
import { renderDatabases, renderSchedules } from './panels.js';

const POLL_MS = 1500;
const SLOW_MS = 15000;

const $ = (id) => document.getElementById(id);

let databases = [];
let timer = 0;
let lastSlow = 0;
let running = false;

const jobs = new JobsTable($('jobs-table').tBodies[0], $('jobs-empty'), (msg) => setText($('jobs-error'), msg));
const form = new ExportForm($('export-form'), () => {
  refreshJobs();
  refreshSlow();
});
jobs.onChange = () => refreshJobs();

function showSignin(why) {
  running = false;
  clearTimeout(timer);
  $('console').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-why').textContent = why;
  $('token').focus();
}

function showConsole() {
  $('signin').hidden = true;
  $('console').hidden = false;
  $('signout').hidden = !token();
}

onUnauthorized((err) => {
  setToken('');
  showSignin(err.message === 'missing bearer token' ? 'This server needs an API token.' : 'Sign in again: ' + err.message + '.');
});

async function refreshSlow() {
  lastSlow = Date.now();
  try {
    const r = await call('GET', '/databases');
    databases = r.databases || [];
    renderDatabases($('db-table').tBodies[0], databases);
    form.setDatabases(databases);
    setText($('db-error'), '');
  } catch (err) {
    if (err.status !== 401) setText($('db-error'), err.message);
    throw err;
  }
  try {
    const r = await call('GET', '/schedules');
    renderSchedules($('sched-table').tBodies[0], $('sched-empty'), r.schedules || []);
    setText($('sched-error'), '');
  } catch (err) {
    if (err.status !== 401) setText($('sched-error'), err.message);
  }
}

async function refreshJobs() {
  try {
    const lists = await Promise.all(
      databases.map((d) =>
        call('GET', dbPath(d.name, '/export/dump/jobs?limit=50')).then((r) => (r.jobs || []).map((j) => normalize(j, d.name))),
      ),
    );
    jobs.update(lists.flat());
    setText($('jobs-error'), '');
  } catch (err) {
    if (err.status !== 401) setText($('jobs-error'), err.message);
  }
}

async function tick() {
  clearTimeout(timer);
  if (!running) return;
  if (!document.hidden) {
    try {
      if (Date.now() - lastSlow >= SLOW_MS) await refreshSlow();
      await refreshJobs();
    } catch {
      // shown in its panel, or the sign-in form is up
    }
  }
  if (running) timer = setTimeout(tick, POLL_MS);
}

async function start() {
  try {
    await refreshSlow();
  } catch (err) {
    if (err.status === 401) return; // the sign-in form is up
    if (err.status === 403) {
      setToken('');
      showSignin('This token cannot read exports: ' + err.message + '.');
      return;
    }
  }
  showConsole();
  running = true;
  tick();
}

$('signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  setToken(t);
  $('token').value = '';
  start();
});

$('signout').addEventListener('click', () => {
  setToken('');
  showSignin('Signed out.');
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && running) tick();
});

start();
