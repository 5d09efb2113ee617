// Workers: who is alive, how busy, which tasks each runs.
import { get } from '../api.js';
import { empty, failure, h, replace, time } from '../ui.js';

export async function mount(root) {
  const list = h('div');
  let last = '';
  async function refresh() {
    let workers;
    try { workers = await get('/zart/admin/v1/workers'); } catch (error) { replace(list, failure(error, 'the workers')); last = ''; throw error; }
    const key = JSON.stringify(workers);
    if (key === last) return;
    last = key;
    if (!workers.length) { replace(list, empty('No worker seen in the last hour.', 'Start one: zart worker MODULE, or zart serve MODULE --with-worker.')); return; }
    replace(list, h('table', { class: 'list', 'aria-label': 'Workers' },
      h('thead', null, h('tr', null, ['worker', 'state', 'busy', 'tasks', 'host', 'started', 'last seen'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, workers.map((w) => h('tr', { 'data-worker': w.workerId },
        h('td', { class: 'mono' }, w.workerId),
        h('td', null, h('span', { class: `badge ${w.alive ? 's-completed' : 's-cancelled'}` }, w.alive ? 'alive' : w.stoppedAt ? 'stopped' : 'silent')),
        h('td', null, h('meter', { min: '0', max: String(w.concurrency), value: String(w.running), title: `${w.running} of ${w.concurrency}` }), ` ${w.running}/${w.concurrency}`),
        h('td', null, w.taskNames.length ? w.taskNames.map((t) => h('span', { class: 'tag' }, t)) : 'every task'),
        h('td', null, `${w.hostname} (pid ${w.pid})`), h('td', null, time(w.startedAt)), h('td', null, time(w.stoppedAt || w.lastSeenAt)))))));
  }
  replace(root, h('h1', null, 'Workers'), list);
  await refresh().catch(() => {});
  return { refresh };
}
