// Queues (zart.Queue): limits, depth, running count, pause / resume, limits changed at run
// time (every worker applies them within one poll interval).
import { enc, get, post, put } from '../api.js';
import { act, card, empty, failure, h, replace } from '../ui.js';

const path = '/zart/admin/v1/queues';

function limit(value) {
  return value === null || value === undefined ? h('span', { class: 'muted' }, 'none') : String(value);
}

/** A form field's limit: '' removes it (null), else a whole number (or "100/1m"). */
function given(text, number) {
  const v = text.trim();
  if (v === '') return null;
  if (!number) return v;
  if (!/^\d+$/.test(v)) throw new Error(`"${v}" is not a whole number (leave it empty for no limit)`);
  return Number(v);
}

function limitsForm(refresh, queue) {
  const problem = h('p', { class: 'problem', role: 'alert' });
  const field = (name, label, value, placeholder) => h('label', { class: 'field' }, h('span', null, label),
    h('input', { name, value: value ?? '', placeholder }));
  const form = h('form', { class: 'grid-form', 'aria-label': queue ? `Limits of ${queue.name}` : 'Set a queue\'s limits' },
    queue ? null : field('name', 'Queue', '', 'emails'),
    field('concurrency', 'Concurrency', queue?.concurrency, 'no limit'),
    field('partitionConcurrency', 'Per partition', queue?.partitionConcurrency, 'no limit'),
    field('rateLimit', 'Rate limit', queue?.rateLimit, 'e.g. 100/1m'),
    field('partitionRateLimit', 'Rate per partition', queue?.partitionRateLimit, 'e.g. 10/1m'),
    problem, h('div', { class: 'field actions' }, h('button', { type: 'submit' }, queue ? 'Save limits' : 'Set limits')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.textContent = '';
    const f = form.elements;
    const name = queue ? queue.name : f.name.value.trim();
    let body;
    try {
      if (!name) throw new Error('Name the queue.');
      body = { concurrency: given(f.concurrency.value, true), partitionConcurrency: given(f.partitionConcurrency.value, true), rateLimit: given(f.rateLimit.value, false), partitionRateLimit: given(f.partitionRateLimit.value, false) };
      await put(`${path}/${enc(name)}`, body);
    } catch (error) { problem.textContent = error.message; return; }
    if (!queue) form.reset();
    const details = form.closest('details');
    if (details) details.open = false;
    await refresh();
  });
  return form;
}

export async function mount(root) {
  const list = h('div', { class: 'stack' });
  let last = '';
  const again = () => { last = ''; return refresh(); };
  async function refresh() {
    let queues;
    try {
      queues = await get(path);
    } catch (error) { replace(list, failure(error, 'the queues')); last = ''; throw error; }
    const key = JSON.stringify(queues);
    if (key === last) return;
    // An operator editing a queue's limits keeps the form: redraw once it is closed.
    if (list.querySelector('details[open]')) return;
    last = key;
    if (!queues.length) {
      replace(list, empty('No queue yet.', 'Declare one with zart.Queue(...) and @durable(queue=...), or set limits below (zart queues set NAME).'));
      return;
    }
    replace(list, h('table', { class: 'list', 'aria-label': 'Queues' },
      h('thead', null, h('tr', null, ['queue', 'state', 'queued', 'running', 'concurrency', 'per partition', 'rate limit', 'rate per partition', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, queues.map((q) => h('tr', { 'data-queue': q.name },
        h('td', null, h('strong', null, q.name)),
        h('td', null, h('span', { class: `badge ${q.paused ? 's-cancelled' : 's-completed'}` }, q.paused ? 'paused' : 'active')),
        h('td', { 'data-field': 'queued' }, String(q.queued)),
        h('td', { 'data-field': 'running' }, String(q.running)),
        h('td', null, limit(q.concurrency)),
        h('td', null, limit(q.partitionConcurrency)),
        h('td', null, limit(q.rateLimit), q.rateLimit ? h('div', { class: 'muted' }, `${q.recentStarts} in this window`) : null),
        h('td', null, limit(q.partitionRateLimit)),
        h('td', { class: 'row' },
          q.paused
            ? h('button', { type: 'button', onclick: () => act({ run: () => post(`${path}/${enc(q.name)}/resume`), done: `Resumed ${q.name}`, refresh: again }) }, 'Resume')
            : h('button', { type: 'button', onclick: () => act({ confirm: `Pause the queue ${q.name}? Nothing new in it starts until it is resumed.`, run: () => post(`${path}/${enc(q.name)}/pause`), done: `Paused ${q.name}`, refresh: again }) }, 'Pause'),
          h('details', null, h('summary', null, 'Edit limits'), limitsForm(again, q))))))));
  }
  replace(root, h('h1', null, 'Queues'), list, card('Set a queue\'s limits', limitsForm(again, null)));
  await refresh().catch(() => {});
  return { refresh };
}
