// Pause rules: steps matching a rule do not start while it is active.
import { del, enc, get, post } from '../api.js';
import { act, card, empty, failure, h, replace, time } from '../ui.js';

const path = '/zart/admin/v1/pause';

function addForm(refresh) {
  const problem = h('p', { class: 'problem', role: 'alert' });
  const form = h('form', { class: 'grid-form', 'aria-label': 'Add a pause rule' },
    h('label', { class: 'field' }, h('span', null, 'Task'), h('input', { name: 'task', placeholder: 'any task' })),
    h('label', { class: 'field' }, h('span', null, 'Step pattern'), h('input', { name: 'step', placeholder: 'charge-* (a glob)' })),
    h('label', { class: 'field' }, h('span', null, 'Execution id'), h('input', { name: 'execution', placeholder: 'any execution' })),
    h('label', { class: 'field' }, h('span', null, 'Expires in (minutes)'), h('input', { name: 'minutes', type: 'number', min: '1', placeholder: 'never' })),
    h('label', { class: 'field wide' }, h('span', null, 'Reason'), h('input', { name: 'reason', placeholder: 'payment provider down' })),
    problem, h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Add pause rule')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.textContent = '';
    const f = form.elements;
    const body = { triggeredBy: 'dashboard' };
    if (f.task.value.trim()) body.taskName = f.task.value.trim();
    if (f.step.value.trim()) body.stepPattern = f.step.value.trim();
    if (f.execution.value.trim()) body.executionId = f.execution.value.trim();
    if (f.reason.value.trim()) body.reason = f.reason.value.trim();
    if (f.minutes.value) body.expiresInSecs = Number(f.minutes.value) * 60;
    try { await post(path, body); } catch (error) { problem.textContent = error.message; return; }
    form.reset();
    await refresh();
  });
  return form;
}

export async function mount(root) {
  const list = h('div');
  let last = '';
  async function refresh() {
    let rules;
    try { rules = await get(path); } catch (error) { replace(list, failure(error, 'the pause rules')); last = ''; throw error; }
    const key = JSON.stringify(rules);
    if (key === last) return;
    last = key;
    const again = () => { last = ''; return refresh(); };
    if (!rules.length) { replace(list, empty('No active pause rule.', 'Every step runs. Add a rule below to hold matching steps back.')); return; }
    replace(list, h('table', { class: 'list', 'aria-label': 'Pause rules' },
      h('thead', null, h('tr', null, ['task', 'step pattern', 'execution', 'reason', 'created', 'expires', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rules.map((r) => h('tr', { 'data-rule': r.ruleId },
        h('td', null, r.taskName || h('span', { class: 'muted' }, 'any')), h('td', null, r.stepPattern ? h('code', null, r.stepPattern) : h('span', { class: 'muted' }, 'any')),
        h('td', null, r.executionId ? h('a', { href: `#/executions/${enc(r.executionId)}` }, r.executionId) : h('span', { class: 'muted' }, 'any')),
        h('td', null, r.reason || ''), h('td', null, time(r.createdAt), r.createdBy ? ` by ${r.createdBy}` : ''), h('td', null, r.expiresAt ? time(r.expiresAt) : 'never'),
        h('td', null, h('button', { type: 'button', class: 'danger', onclick: () => act({ confirm: 'Remove this pause rule? The steps it held start.', run: () => del(`${path}/${enc(r.ruleId)}`, { triggeredBy: 'dashboard' }), done: 'Pause rule removed', refresh: again }) }, 'Remove')))))));
  }
  replace(root, h('h1', null, 'Pause rules'), list, card('Add a pause rule', addForm(() => { last = ''; return refresh(); })));
  await refresh().catch(() => {});
  return { refresh };
}
