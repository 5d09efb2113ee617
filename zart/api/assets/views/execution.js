// One execution: summary, what it waits for, runs, a step timeline on a time axis, every
// step's result and error in full, events; cancel, send event, retry step, restart, rerun,
// skip a sleep.
import { enc, get, post } from '../api.js';
import { waitText } from './executions.js';
import { act, card, duration, empty, failure, h, parseJson, replace, setParams, statusBadge, time, toast, value } from '../ui.js';

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const base = (id) => `/zart/admin/v1/executions/${enc(id)}`;

function summary(e, run, patches) {
  const rows = [
    ['task', h('code', null, e.name)],
    ['status', statusBadge(e.status)],
    ['started', time(e.scheduledAt)],
    ['finished', time(e.completedAt)],
    ['runs', `${e.runCount} (showing run ${run.runIndex}, ${run.trigger}${run.triggeredBy ? ` by ${run.triggeredBy}` : ''})`],
    ['version', String(e.version)],
  ];
  if (e.crashedClaims) rows.push(['crashed claims', `${e.crashedClaims} in a row (a worker died or lost its lease)`]);
  if (Object.keys(e.tags || {}).length) rows.push(['tags', Object.entries(e.tags).map(([k, v]) => h('span', { class: 'tag' }, `${k}:${v}`))]);
  if (e.compensationId) rows.push(['compensation', h('a', { href: `#/executions/${enc(e.compensationId)}` }, e.compensationId)]);
  if (e.compensates) rows.push(['compensates', h('a', { href: `#/executions/${enc(e.compensates)}` }, e.compensates)]);
  if (e.parentExecutionId) rows.push(['parent', h('a', { href: `#/executions/${enc(e.parentExecutionId)}`, 'data-parent': e.parentExecutionId }, e.parentExecutionId)]);
  if (patches && patches.length) rows.push(['patches', patches.map((p) => h('span', { class: 'tag' }, p))]);
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** Each step's attempts, waits and back-offs on one time axis (a Gantt chart). */
function timeline(detail) {
  const steps = detail.steps;
  if (!steps.length) return empty('No step recorded in this run yet.');
  const now = Date.now();
  const times = [];
  for (const s of steps) {
    times.push(Date.parse(s.scheduledAt));
    if (s.completedAt) times.push(Date.parse(s.completedAt));
    if (s.wakeAt) times.push(Math.min(Date.parse(s.wakeAt), now));
    for (const a of s.attempts) times.push(Date.parse(a.startedAt), Date.parse(a.completedAt));
  }
  const running = steps.some((s) => !s.completedAt);
  if (running) times.push(now);
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - start);
  const at = (t) => `${(100 * (t - start)) / span}%`;
  const place = (element, from, to) => {
    element.style.setProperty('left', at(from));
    element.style.setProperty('width', `max(3px, ${(100 * (to - from)) / span}%)`);
    return element;
  };
  const rows = steps.map((s) => {
    const lane = h('div', { class: 'lane' });
    const began = Date.parse(s.scheduledAt);
    const ended = s.completedAt ? Date.parse(s.completedAt) : now;
    if (s.kind === 'sleep' || s.kind === 'event') {
      lane.append(place(h('span', { class: `seg wait ${s.status}`, title: `${s.kind} ${s.name}: ${s.status}` }), began, ended));
    } else {
      let previous = null;
      for (const a of s.attempts) {
        const from = Date.parse(a.startedAt);
        if (previous !== null && from > previous) lane.append(place(h('span', { class: 'seg backoff', title: 'retry back-off' }), previous, from));
        lane.append(place(h('span', { class: `seg attempt ${a.status}`, title: `attempt ${a.attemptNumber}: ${a.status}, ${duration((Date.parse(a.completedAt) - from) / 1000)}` }), from, Date.parse(a.completedAt)));
        previous = Date.parse(a.completedAt);
      }
      if (s.status === 'waiting' && previous !== null) lane.append(place(h('span', { class: 'seg backoff', title: `back-off until ${s.wakeAt}` }), previous, Math.max(previous, now)));
      if (s.status === 'running') lane.append(place(h('span', { class: 'seg attempt running', title: 'running' }), previous ?? began, now));
    }
    return h('div', { class: 'gantt-row' }, h('span', { class: 'gantt-name', title: s.name }, s.name), lane);
  });
  return h('div', { class: 'gantt', role: 'img', 'aria-label': 'Step timeline' }, rows,
    h('div', { class: 'gantt-axis' }, h('span', null, new Date(start).toLocaleTimeString()), h('span', null, duration(span / 1000)), h('span', null, new Date(start + span).toLocaleTimeString())),
    h('p', { class: 'legend' }, h('span', { class: 'key attempt' }), 'attempt ', h('span', { class: 'key failed' }), 'failed attempt ', h('span', { class: 'key backoff' }), 'back-off ', h('span', { class: 'key wait' }), 'sleep / event wait'));
}

function stepCard(e, s, rerun, refresh, opened) {
  const actions = [];
  if (s.retryable) {
    actions.push(h('button', { type: 'button', onclick: () => act({
      confirm: `Run step ${s.name} once more?`, done: `Step ${s.name} will run again`, refresh,
      run: () => post(`${base(e.durableExecutionId)}/retry-step`, { stepName: s.name, triggeredBy: 'dashboard' }),
    }) }, 'Retry step'));
  }
  if (s.kind === 'sleep' && s.status === 'waiting' && e.status === 'waiting') {
    actions.push(h('button', { type: 'button', onclick: () => act({
      confirm: `End the sleep ${s.name} now?`, done: `Sleep ${s.name} skipped`, refresh,
      run: () => post(`${base(e.durableExecutionId)}/skip-sleep`, { stepName: s.name, triggeredBy: 'dashboard' }),
    }) }, 'Skip sleep'));
  }
  const box = h('input', { type: 'checkbox', checked: rerun.has(s.name), 'aria-label': `Rerun ${s.name}`,
    onchange: (event) => { if (event.target.checked) rerun.add(s.name); else rerun.delete(s.name); } });
  const attempts = s.attempts.length ? h('table', { class: 'attempts' },
    h('thead', null, h('tr', null, ['#', 'status', 'started', 'took', 'error'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, s.attempts.map((a) => h('tr', null,
      h('td', null, String(a.attemptNumber)), h('td', null, statusBadge(a.status)), h('td', null, time(a.startedAt, { relative: false })),
      h('td', null, duration((Date.parse(a.completedAt) - Date.parse(a.startedAt)) / 1000)),
      h('td', null, a.errorDetail ? h('details', null, h('summary', null, a.error), value(a.errorDetail, 'attempt error')) : h('span', { class: 'muted' }, '—')))))) : null;
  // Folded or unfolded by the viewer: kept across live refreshes.
  const open = opened.has(s.name) ? opened.get(s.name) : s.status !== 'completed';
  return h('details', { class: `step s-${s.status}`, open: open || null, 'data-step': s.name,
    ontoggle: (event) => opened.set(s.name, event.target.open) },
    h('summary', null, h('span', { class: 'step-name' }, s.name), h('span', { class: 'muted' }, ` ${s.kind}`), ' ', statusBadge(s.status),
      s.retryAttempt ? h('span', { class: 'muted' }, ` · ${s.retryAttempt + 1} attempts`) : null,
      s.wakeAt && s.status === 'waiting' ? h('span', { class: 'muted' }, ' · due ', time(s.wakeAt)) : null),
    h('div', { class: 'step-body' },
      h('div', { class: 'row' }, h('label', { class: 'inline' }, box, ' rerun'), ...actions),
      h('p', { class: 'muted' }, 'began ', time(s.scheduledAt, { relative: false }), s.completedAt ? [' · finished ', time(s.completedAt, { relative: false })] : null),
      s.status === 'completed' || s.result !== null ? [h('h4', null, 'result'), value(s.result, `result of ${s.name}`)] : null,
      s.lastError ? [h('h4', null, 'error'), h('p', { class: 'error-line' }, s.lastError), value(s.lastErrorDetail, `error of ${s.name}`)] : null,
      attempts));
}

function events(detail) {
  if (!detail.events.length) return empty('No event delivered.', 'Send one with the form above, or POST /api/v1/events/{id}/{name}.');
  return h('table', { class: 'list' }, h('thead', null, h('tr', null, ['event', 'arrived', 'taken by its wait', 'sender', 'payload'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, detail.events.map((ev) => h('tr', { 'data-event': ev.name },
      h('td', null, h('code', null, ev.name)), h('td', null, time(ev.receivedAt)), h('td', null, time(ev.consumedAt, { relative: false })),
      h('td', null, ev.sender || h('span', { class: 'muted' }, '—')), h('td', null, value(ev.payload, `payload of ${ev.name}`))))));
}

function children(detail) {
  const found = detail.children || [];
  if (!found.length) return empty('No child execution.', 'A handler starts one with zart.run_child or zart.start_child.');
  return h('table', { class: 'list', 'aria-label': 'Children' }, h('thead', null, h('tr', null, ['child', 'task', 'status', 'started', 'finished'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, found.map((c) => h('tr', { 'data-child': c.durableExecutionId },
      h('td', null, h('a', { href: `#/executions/${enc(c.durableExecutionId)}` }, c.durableExecutionId)), h('td', null, h('code', null, c.name)),
      h('td', null, statusBadge(c.status)), h('td', null, time(c.scheduledAt)), h('td', null, time(c.completedAt))))));
}

/** The hold of a replay that left the recorded history, with the operator's two answers. */
function heldCard(id, held, refresh) {
  const answer = (what, label, text) => h('button', {
    type: 'button', name: what,
    onclick: () => act({ confirm: text, run: () => post(`${base(id)}/${what}`), done: label, refresh }),
  }, label);
  return card('Held: its replay left the recorded history',
    h('p', { class: 'problem', 'data-divergence': '' }, held.message),
    h('p', { class: 'muted' }, `Detected ${new Date(held.detectedAt).toLocaleString()}. Deploy a fix (or a patch), then resume; or fail it.`),
    h('div', { class: 'row' },
      answer('resume-diverged', 'Resume', `Resume ${id}? It replays at once, and is held again if it still diverges.`),
      answer('fail-diverged', 'Fail', `Fail ${id}? It ends failed with a non_deterministic_replay error.`)));
}

function actionsCard(id, getDetail, refresh) {
  const problem = h('p', { class: 'problem', role: 'alert' });
  const eventName = h('input', { name: 'event', required: true, list: 'pending-events', placeholder: 'event name' });
  const payload = h('textarea', { name: 'payload', rows: 4, placeholder: '{"approved": true}', spellcheck: 'false' });
  const sendForm = h('form', { class: 'stack', 'aria-label': 'Send an event' },
    h('h3', null, 'Send an event'),
    h('label', { class: 'field' }, h('span', null, 'Event'), eventName, h('datalist', { id: 'pending-events' })),
    h('label', { class: 'field' }, h('span', null, 'Payload (JSON)'), payload),
    problem, h('button', { type: 'submit' }, 'Send event'));
  sendForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.textContent = '';
    let body;
    try { body = parseJson(payload.value, 'The payload'); } catch (error) { problem.textContent = error.message; return; }
    try {
      await post(`/api/v1/events/${enc(id)}/${enc(eventName.value.trim())}`, body);
    } catch (error) {
      problem.textContent = error.message;
      return;
    }
    toast(`Event ${eventName.value} delivered`, 'ok');
    payload.value = '';
    await refresh();
  });
  const newPayload = h('textarea', { name: 'restart-payload', rows: 3, placeholder: 'leave empty to keep the current payload', spellcheck: 'false' });
  const restartProblem = h('p', { class: 'problem', role: 'alert' });
  const restartForm = h('form', { class: 'stack', 'aria-label': 'Restart' }, h('h3', null, 'Restart or rerun'),
    h('label', { class: 'field' }, h('span', null, 'New payload (JSON, optional)'), newPayload), restartProblem,
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Restart'),
      h('button', { type: 'button', name: 'rerun', onclick: () => rerunSelected() }, 'Rerun selected steps')),
    h('p', { class: 'muted' }, 'Restart runs the execution again from the top in a new run. Rerun keeps every step but the ones ticked (and those after them).'));
  restartForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    restartProblem.textContent = '';
    let body;
    try { body = parseJson(newPayload.value, 'The payload'); } catch (error) { restartProblem.textContent = error.message; return; }
    await act({ confirm: `Restart ${id} from the top in a new run?`, done: 'Restarted in a new run', refresh: async () => { setParams(new URLSearchParams()); await refresh(); },
      run: () => post(`${base(id)}/restart`, body === null ? { triggeredBy: 'dashboard' } : { payload: body, triggeredBy: 'dashboard' }) });
  });
  async function rerunSelected() {
    const { rerun } = getDetail();
    if (!rerun.size) { restartProblem.textContent = 'Tick the steps to rerun first (in the steps below).'; return; }
    await act({ confirm: `Rerun ${[...rerun].join(', ')} in a new run?`, done: 'Rerun started', refresh: async () => { rerun.clear(); setParams(new URLSearchParams()); await refresh(); },
      run: () => post(`${base(id)}/rerun`, { rerunSteps: [...rerun], triggeredBy: 'dashboard' }) });
  }
  const cancel = h('button', { type: 'button', class: 'danger', name: 'cancel', onclick: () => act({
    confirm: `Cancel ${id}? Its on_cancel compensation, if any, starts.`, done: 'Cancelled', refresh,
    run: () => post(`/api/v1/executions/${enc(id)}/cancel`),
  }) }, 'Cancel execution');
  return { element: card('Actions', h('div', { class: 'row' }, cancel), h('div', { class: 'two' }, sendForm, restartForm)), cancel, eventName };
}

export async function mount(root, { params, match }) {
  const [id] = match;
  const runId = params.get('run');
  const rerun = new Set();
  const opened = new Map();
  let detail = null;
  const head = h('div', { class: 'head' });
  const body = h('div', { class: 'stack' });
  const actions = actionsCard(id, () => ({ detail, rerun }), () => { last = ''; return refresh(); });
  let last = '';
  replace(root, h('p', null, h('a', { href: '#/executions' }, '← Executions')), head, actions.element, body);

  async function refresh() {
    try {
      detail = await get(`${base(id)}/detail`, { runId: params.get('run') ? runId : undefined });
    } catch (error) {
      replace(head, h('h1', { class: 'mono' }, id));
      replace(body, error.status === 404 ? empty(`No execution ${id}`, 'It may have been pruned; go back to the list.') : failure(error, 'this execution'));
      actions.element.hidden = true;
      last = '';
      if (error.status !== 404) throw error;
      return;
    }
    actions.element.hidden = false;
    const key = JSON.stringify(detail);
    if (key === last) return;
    last = key;
    const e = detail.execution;
    const run = detail.runs.find((r) => r.runId === detail.runId) || detail.runs[detail.runs.length - 1];
    actions.cancel.disabled = TERMINAL.has(e.status);
    const pendingEvents = detail.steps.filter((s) => s.kind === 'event' && s.status === 'waiting');
    const list = actions.element.querySelector('#pending-events');
    replace(list, pendingEvents.map((s) => h('option', { value: s.name })));
    if (!actions.eventName.value && pendingEvents.length) actions.eventName.value = pendingEvents[0].name;
    replace(head, h('h1', { class: 'mono' }, id), statusBadge(e.status));
    const waits = detail.steps.filter((s) => s.status === 'waiting');
    replace(body,
      card('Summary', summary(e, run, detail.patches), h('div', { class: 'two' },
        h('div', null, h('h3', null, 'payload'), value(run.payload, 'payload')),
        h('div', null, h('h3', null, e.status === 'failed' ? 'error' : 'result'), value(e.status === 'failed' ? e.error : e.result, 'outcome')))),
      detail.divergence ? heldCard(id, detail.divergence, refresh) : null,
      waits.length ? card('Waiting for', h('ul', { class: 'plain' }, waits.map((s) => h('li', null, waitText({ name: s.name, kind: s.kind, wakeAt: s.wakeAt }))))) : null,
      card('Runs', h('table', { class: 'list' }, h('thead', null, h('tr', null, ['run', 'trigger', 'status', 'started', 'finished'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, detail.runs.map((r) => h('tr', { 'aria-current': r.runId === detail.runId ? 'true' : null },
          h('td', null, h('a', { href: `#/executions/${enc(id)}?run=${enc(r.runId)}` }, `run ${r.runIndex}`)), h('td', null, r.trigger, r.triggeredBy ? ` by ${r.triggeredBy}` : ''),
          h('td', null, statusBadge(r.status)), h('td', null, time(r.startedAt, { relative: false })), h('td', null, time(r.completedAt, { relative: false }))))))),
      card('Timeline', timeline(detail)),
      card(`Steps of run ${run.runIndex}`, detail.steps.length ? detail.steps.map((s) => stepCard(e, s, rerun, refresh, opened)) : empty('No step recorded in this run yet.')),
      card('Events', events(detail)),
      card('Children', children(detail)));
  }
  await refresh().catch((error) => toast(error.message, 'error'));
  return { refresh };
}
