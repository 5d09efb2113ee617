// Start an execution: a form generated from the handler's input JSON schema (or JSON).
import { get, post } from '../api.js';
import { schemaForm } from '../form.js';
import { card, empty, failure, h, parseJson, replace, setParams, toast } from '../ui.js';

export async function mount(root, { params }) {
  let tasks;
  try {
    tasks = await get('/zart/admin/v1/tasks');
  } catch (error) {
    replace(root, h('h1', null, 'Start an execution'), failure(error, 'the tasks'));
    return {};
  }
  if (!tasks.length) {
    replace(root, h('h1', null, 'Start an execution'), empty('No task known to this server.',
      'Serve the module that defines your durable handlers (zart serve MODULE), or run a worker for them.'));
    return {};
  }
  const chosen = tasks.find((t) => t.name === params.get('task')) || tasks[0];
  const picker = h('select', { id: 'task', name: 'task' }, tasks.map((t) => h('option', { value: t.name, selected: t === chosen }, t.name)));
  picker.addEventListener('change', () => { setParams(new URLSearchParams({ task: picker.value })); mount(root, { params: new URLSearchParams({ task: picker.value }) }); });
  const generated = chosen.inputSchema ? schemaForm(chosen.inputSchema) : null;
  const raw = h('textarea', { name: 'json', rows: 6, spellcheck: 'false', placeholder: chosen.takesInput || !chosen.registeredHere ? '{"key": "value"}' : 'this task takes no input' });
  const useJson = h('input', { type: 'checkbox', name: 'as-json', checked: !generated });
  const id = h('input', { name: 'execution-id', placeholder: 'a UUID is made when empty' });
  const tags = h('input', { name: 'tags', placeholder: 'tenant:acme, env:prod' });
  const problem = h('p', { class: 'problem', role: 'alert' });
  const generatedBox = h('div', { hidden: !generated || null }, generated ? generated.element : null);
  const rawBox = h('label', { class: 'field', hidden: generated ? true : null }, h('span', null, 'Payload (JSON)'), raw);
  useJson.addEventListener('change', () => {
    if (useJson.checked && generated) { try { raw.value = JSON.stringify(generated.read(), null, 2); } catch (_) { /* keep */ } }
    generatedBox.hidden = useJson.checked;
    rawBox.hidden = !useJson.checked;
  });
  const form = h('form', { class: 'stack', 'aria-label': 'Start an execution' },
    h('label', { class: 'field' }, h('span', null, 'Task'), picker),
    chosen.registeredHere ? null : h('p', { class: 'muted' }, 'Run by a live worker; this server does not know its input model, so give the payload as JSON.'),
    generated ? h('label', { class: 'inline' }, useJson, ' edit the payload as JSON') : null,
    generatedBox, rawBox,
    h('details', null, h('summary', null, 'Execution id and tags'),
      h('label', { class: 'field' }, h('span', null, 'Execution id (idempotency key)'), id),
      h('label', { class: 'field' }, h('span', null, 'Tags'), tags)),
    problem, h('button', { type: 'submit' }, 'Start'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.textContent = '';
    const body = { taskName: picker.value };
    try {
      body.payload = useJson.checked || !generated ? parseJson(raw.value, 'The payload') : generated.read();
    } catch (error) { problem.textContent = error.message; return; }
    if (id.value.trim()) body.executionId = id.value.trim();
    const pairs = tags.value.split(',').map((t) => t.trim()).filter(Boolean);
    if (pairs.length) {
      body.tags = {};
      for (const pair of pairs) {
        const at = pair.indexOf(':');
        if (at < 1) { problem.textContent = `The tag ${pair} is not key:value.`; return; }
        body.tags[pair.slice(0, at)] = pair.slice(at + 1);
      }
    }
    try {
      const started = await post('/api/v1/executions', body);
      toast(`Started ${started.durableExecutionId}`, 'ok');
      location.hash = `#/executions/${encodeURIComponent(started.durableExecutionId)}`;
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  replace(root, h('h1', null, 'Start an execution'), card(null, form));
  return {};
}
