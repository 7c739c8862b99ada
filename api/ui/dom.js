// DOM and formatting helpers. Text only ever enters the page through
// textContent (el's string children): nothing from the server is parsed
// as HTML.

// el creates an element. attrs are set as attributes (never event
// handlers); string and number children become text nodes.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) throw new Error('el: no inline handlers');
    e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// setText sets an element's text, and hides it when empty.
export function setText(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n) {
  if (typeof n !== 'number' || !isFinite(n) || n < 0) return '—';
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

export function duration(s) {
  if (typeof s !== 'number' || !isFinite(s) || s < 0) return '—';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

// time accepts an ISO string or epoch milliseconds.
export function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  const d = new Date(v);
  return isNaN(d.getTime()) ? null : d;
}

export function time(v) {
  const d = toDate(v);
  if (!d) return '—';
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}
