// Executions: filters, search, sort, paging (all kept in the URL), what each waiting one
// waits for and until when, bulk cancel / restart / retry of the selected ones.
import { enc, get, page, post } from '../api.js';
import { act, empty, failure, h, replace, setParams, statusBadge, time, toast } from '../ui.js';

const STATUSES = ['scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled'];
const SORTS = [['scheduled_at', 'started'], ['completed_at', 'finished'], ['task_name', 'task'], ['status', 'status']];
const PAGE = 25;
const FIELDS = ['status', 'task', 'search', 'tag', 'from', 'to', 'sort', 'order'];

export function waitText(wait) {
  const until = wait.wakeAt ? [' until ', time(wait.wakeAt)] : [' (no deadline)'];
  if (wait.kind === 'event') return h('span', { class: 'wait' }, 'event ', h('code', null, wait.name), ...until);
  if (wait.kind === 'sleep') return h('span', { class: 'wait' }, 'sleep ', h('code', null, wait.name), ...until);
  return h('span', { class: 'wait' }, 'retry of ', h('code', null, wait.name), ...until);
}

function localInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function filterForm(params, apply) {
  const field = (name, label, control) => h('label', { class: 'field' }, h('span', null, label), control);
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter executions' },
    field('status', 'Status', h('select', { name: 'status' }, h('option', { value: '' }, 'any'),
      STATUSES.map((s) => h('option', { value: s, selected: params.get('status') === s }, s)))),
    field('task', 'Task', h('input', { name: 'task', list: 'task-names', value: params.get('task') || '', placeholder: 'any task' })),
    field('search', 'Search', h('input', { name: 'search', type: 'search', value: params.get('search') || '', placeholder: 'id or task name' })),
    field('tag', 'Tags', h('input', { name: 'tag', value: params.get('tag') || '', placeholder: 'tenant:acme, env:prod' })),
    field('from', 'Started from', h('input', { name: 'from', type: 'datetime-local', value: localInput(params.get('from')) })),
    field('to', 'Started before', h('input', { name: 'to', type: 'datetime-local', value: localInput(params.get('to')) })),
    field('sort', 'Sort by', h('select', { name: 'sort' }, SORTS.map(([v, l]) => h('option', { value: v, selected: (params.get('sort') || 'scheduled_at') === v }, l)))),
    field('order', 'Order', h('select', { name: 'order' }, [['desc', 'newest first'], ['asc', 'oldest first']].map(([v, l]) => h('option', { value: v, selected: (params.get('order') || 'desc') === v }, l)))),
    h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply'),
      h('button', { type: 'reset', class: 'ghost' }, 'Clear')),
    h('datalist', { id: 'task-names' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FIELDS) {
      let v = form.elements[name].value.trim();
      if ((name === 'from' || name === 'to') && v) v = new Date(v).toISOString();
      if (v) next.set(name, v);
    }
    apply(next);
  });
  form.addEventListener('reset', (event) => { event.preventDefault(); apply(new URLSearchParams()); });
  get('/zart/admin/v1/tasks').then((tasks) => {
    form.querySelector('#task-names').append(...tasks.map((t) => h('option', { value: t.name })));
  }).catch(() => {});
  return form;
}

function query(params, offset) {
  const tags = (params.get('tag') || '').split(',').map((t) => t.trim()).filter(Boolean);
  return {
    status: params.get('status'), taskName: params.get('task'), search: params.get('search'),
    tag: tags, from: params.get('from'), to: params.get('to'),
    sortBy: params.get('sort') || 'scheduled_at', sortOrder: params.get('order') || 'desc',
    limit: PAGE, offset,
  };
}

async function retryFailedStep(id) {
  const detail = await get(`/zart/admin/v1/executions/${enc(id)}/detail`);
  const step = detail.steps.find((s) => s.retryable);
  if (!step) throw new Error(`${id}: no failed step to retry`);
  await post(`/zart/admin/v1/executions/${enc(id)}/retry-step`, { stepName: step.name, triggeredBy: 'dashboard' });
}

export async function mount(root, { params }) {
  let state = new URLSearchParams(params);
  let offset = Number(state.get('offset') || 0);
  const selected = new Set();
  const table = h('div', { class: 'table-wrap' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const count = h('span', { class: 'muted', 'data-test': 'total' });
  const bulkBar = h('div', { class: 'bulk', 'aria-label': 'Selected executions' });
  let last = '';
  let shown = [];

  function apply(next) {
    state = next;
    offset = 0;
    selected.clear();
    setParams(state);
    last = '';
    refresh().catch(() => {});
  }

  async function bulk(label, run, confirm) {
    const ids = [...selected];
    await act({
      confirm: `${confirm} ${ids.length} execution${ids.length === 1 ? '' : 's'}?`,
      run: async () => {
        const problems = [];
        for (const id of ids) {
          try { await run(id); } catch (error) { problems.push(`${id}: ${error.message}`); }
        }
        if (problems.length) throw new Error(`${label}: ${problems.length} of ${ids.length} refused — ${problems.join('; ')}`);
      },
      done: `${label}: ${ids.length} done`,
      refresh: async () => { selected.clear(); last = ''; await refresh(); },
    });
  }

  function renderBulk() {
    const n = selected.size;
    replace(bulkBar, n === 0 ? h('span', { class: 'muted' }, 'Select executions to cancel, restart or retry them.') : [
      h('strong', null, `${n} selected`),
      h('button', { type: 'button', class: 'danger', onclick: () => bulk('Cancel', (id) => post(`/api/v1/executions/${enc(id)}/cancel`), 'Cancel') }, 'Cancel selected'),
      h('button', { type: 'button', onclick: () => bulk('Retry failed step', retryFailedStep, 'Retry the failed step of') }, 'Retry failed step'),
      h('button', { type: 'button', onclick: () => bulk('Restart', (id) => post(`/zart/admin/v1/executions/${enc(id)}/restart`, { triggeredBy: 'dashboard' }), 'Restart') }, 'Restart selected'),
      h('button', { type: 'button', class: 'ghost', onclick: () => { selected.clear(); last = ''; refresh(); } }, 'Clear selection')]);
  }

  function row(e, waits) {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${e.durableExecutionId}`, checked: selected.has(e.durableExecutionId),
      onchange: (event) => { if (event.target.checked) selected.add(e.durableExecutionId); else selected.delete(e.durableExecutionId); renderBulk(); } });
    const waiting = waits[e.durableExecutionId] || [];
    return h('tr', { 'data-id': e.durableExecutionId },
      h('td', null, box),
      h('td', null, h('a', { href: `#/executions/${enc(e.durableExecutionId)}`, class: 'mono' }, e.durableExecutionId)),
      h('td', null, e.name),
      h('td', null, statusBadge(e.status), e.crashedClaims ? h('span', { class: 'badge warn', title: 'claims that ended without the worker reporting back' }, `${e.crashedClaims} crashed`) : null),
      h('td', { class: 'waits' }, waiting.length ? waiting.map((w) => h('div', null, waitText(w))) : h('span', { class: 'muted' }, e.status === 'waiting' ? 'paused or held' : '')),
      h('td', null, time(e.scheduledAt)),
      h('td', null, time(e.completedAt, { relative: false })),
      h('td', null, Object.entries(e.tags || {}).map(([k, v]) => h('span', { class: 'tag' }, `${k}:${v}`))));
  }

  async function refresh() {
    let listed;
    try {
      listed = await page('/api/v1/executions', query(state, offset));
    } catch (error) {
      replace(table, failure(error, 'the executions'));
      last = '';
      throw error;
    }
    const runs = listed.items.filter((e) => e.status === 'waiting').map((e) => e.runId);
    const waits = runs.length ? await get('/zart/admin/v1/waits', { runId: runs }) : {};
    const key = JSON.stringify([listed, waits, offset]);
    if (key === last) return;
    last = key;
    shown = listed.items;
    count.textContent = `${listed.total} execution${listed.total === 1 ? '' : 's'}`;
    if (!shown.length) {
      replace(table, empty(state.toString() ? 'No execution matches these filters.' : 'No executions yet.',
        state.toString() ? 'Clear the filters, or widen the time range.' : 'Start one from the Start screen, or with zart start TASK.'));
    } else {
      const all = h('input', { type: 'checkbox', 'aria-label': 'Select every execution on this page', checked: shown.every((e) => selected.has(e.durableExecutionId)),
        onchange: (event) => { for (const e of shown) { if (event.target.checked) selected.add(e.durableExecutionId); else selected.delete(e.durableExecutionId); } last = ''; refresh(); } });
      replace(table, h('table', { class: 'list', 'aria-label': 'Executions' },
        h('thead', null, h('tr', null, h('th', null, all), ['id', 'task', 'status', 'waits for', 'started', 'finished', 'tags'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, shown.map((e) => row(e, waits)))));
    }
    const pages = Math.max(1, Math.ceil(listed.total / PAGE));
    const at = Math.floor(offset / PAGE) + 1;
    const go = (next) => { offset = next; const s = new URLSearchParams(state); if (offset) s.set('offset', offset); setParams(s); last = ''; refresh(); };
    replace(pager,
      h('button', { type: 'button', class: 'ghost', disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE)) }, '← Newer'),
      h('span', null, `page ${at} of ${pages}`),
      h('button', { type: 'button', class: 'ghost', disabled: offset + PAGE >= listed.total, onclick: () => go(offset + PAGE) }, 'Older →'));
    renderBulk();
  }

  replace(root, h('div', { class: 'head' }, h('h1', null, 'Executions'), count),
    filterForm(state, apply), bulkBar, table, pager);
  renderBulk();
  await refresh().catch((error) => toast(error.message, 'error'));
  return { refresh };
}
