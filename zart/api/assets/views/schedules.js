// Schedules: next fire, recent firings, pause / resume, add / remove.
import { del, enc, get, post } from '../api.js';
import { act, card, empty, failure, h, parseJson, replace, time } from '../ui.js';

const path = '/zart/admin/v1/schedules';

function addForm(refresh) {
  const problem = h('p', { class: 'problem', role: 'alert' });
  const input = (name, placeholder, value) => h('input', { name, placeholder, value, required: name !== 'payload' });
  const form = h('form', { class: 'grid-form', 'aria-label': 'Add a schedule' },
    h('label', { class: 'field' }, h('span', null, 'Name'), input('name', 'nightly-report')),
    h('label', { class: 'field' }, h('span', null, 'Task'), h('input', { name: 'task', list: 'schedule-tasks', required: true }), h('datalist', { id: 'schedule-tasks' })),
    h('label', { class: 'field' }, h('span', null, 'Cron'), input('cron', '0 3 * * *')),
    h('label', { class: 'field' }, h('span', null, 'Time zone'), input('timezone', 'UTC', 'UTC')),
    h('label', { class: 'field wide' }, h('span', null, 'Payload (JSON, optional)'), h('textarea', { name: 'payload', rows: 2, spellcheck: 'false' })),
    problem, h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Add schedule')));
  get('/zart/admin/v1/tasks').then((tasks) => form.querySelector('#schedule-tasks').append(...tasks.map((t) => h('option', { value: t.name })))).catch(() => {});
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.textContent = '';
    const f = form.elements;
    let payload;
    try { payload = parseJson(f.payload.value, 'The payload'); } catch (error) { problem.textContent = error.message; return; }
    try {
      await post(path, { name: f.name.value.trim(), taskName: f.task.value.trim(), cron: f.cron.value.trim(), timezone: f.timezone.value.trim() || 'UTC', payload });
    } catch (error) { problem.textContent = error.message; return; }
    form.reset();
    await refresh();
  });
  return form;
}

export async function mount(root) {
  const list = h('div', { class: 'stack' });
  let last = '';
  async function refresh() {
    let schedules;
    try {
      schedules = await get(path);
    } catch (error) { replace(list, failure(error, 'the schedules')); last = ''; throw error; }
    const firings = await Promise.all(schedules.map((s) => get(`${path}/${enc(s.name)}/firings`, { limit: 5 })));
    const key = JSON.stringify([schedules, firings]);
    if (key === last) return;
    last = key;
    const again = () => { last = ''; return refresh(); };
    if (!schedules.length) {
      replace(list, empty('No schedule yet.', 'Add one below, declare schedule= on a handler, or use scheduler.add_schedule().'));
      return;
    }
    replace(list, h('table', { class: 'list', 'aria-label': 'Schedules' },
      h('thead', null, h('tr', null, ['name', 'task', 'rule', 'state', 'next fire', 'recent firings', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, schedules.map((s, i) => h('tr', { 'data-schedule': s.name },
        h('td', null, h('strong', null, s.name)), h('td', null, h('a', { href: `#/executions?task=${enc(s.taskName)}` }, s.taskName)),
        h('td', null, h('code', null, s.cron), ` ${s.timezone}`, h('div', { class: 'muted' }, `overlap ${s.overlap}, catch-up ${s.catchup}`)),
        h('td', null, h('span', { class: `badge ${s.paused ? 's-cancelled' : 's-completed'}` }, s.paused ? 'paused' : 'active')),
        h('td', null, s.paused ? h('span', { class: 'muted' }, 'paused') : time(s.nextFireAt)),
        h('td', null, firings[i].length ? h('ul', { class: 'plain' }, firings[i].map((f) => h('li', null, time(f.fireAt, { relative: false }), ' → ',
          f.executionId ? h('a', { href: `#/executions/${enc(f.executionId)}` }, f.executionId) : h('span', { class: 'muted' }, 'skipped')))) : h('span', { class: 'muted' }, 'none yet')),
        h('td', { class: 'row' },
          s.paused
            ? h('button', { type: 'button', onclick: () => act({ run: () => post(`${path}/${enc(s.name)}/resume`), done: `Resumed ${s.name}`, refresh: again }) }, 'Resume')
            : h('button', { type: 'button', onclick: () => act({ run: () => post(`${path}/${enc(s.name)}/pause`), done: `Paused ${s.name}`, refresh: again }) }, 'Pause'),
          h('button', { type: 'button', class: 'danger', onclick: () => act({ confirm: `Remove the schedule ${s.name} and its firing history?`, run: () => del(`${path}/${enc(s.name)}`), done: `Removed ${s.name}`, refresh: again }) }, 'Remove')))))));
  }
  replace(root, h('h1', null, 'Schedules'), list, card('Add a schedule', addForm(() => { last = ''; return refresh(); })));
  await refresh().catch(() => {});
  return { refresh };
}
