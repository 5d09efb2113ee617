// Overview: counts by status, activity over the last hour or day, slowest and most failing
// tasks, live workers.
import { get } from '../api.js';
import { card, duration, empty, failure, h, replace, statusBadge } from '../ui.js';

const STATUSES = ['scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled'];
const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, value);
  element.append(...children);
  return element;
}

function counts(stats) {
  const shown = { ...stats, running: stats.running - stats.waiting };
  return h('div', { class: 'counts' }, STATUSES.map((status) =>
    h('a', { class: 'count', href: `#/executions?status=${status}`, 'data-count': status },
      h('span', { class: 'count-n' }, String(shown[status] ?? 0)), statusBadge(status))));
}

function chart(activity) {
  const buckets = activity.buckets;
  const top = Math.max(1, ...buckets.map((b) => Math.max(b.started, b.completed + b.failed)));
  const width = 720;
  const height = 180;
  const slot = width / buckets.length;
  const bar = (slot - 4) / 2;
  const y = (n) => height - 20 - (n / top) * (height - 40);
  const drawing = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': `Executions started, completed and failed per ${duration(activity.windowSecs / buckets.length)}` });
  drawing.append(svg('line', { x1: 0, x2: width, y1: height - 20, y2: height - 20, class: 'axis' }));
  buckets.forEach((b, i) => {
    const x = i * slot + 2;
    const title = `${new Date(b.start).toLocaleTimeString()}: ${b.started} started, ${b.completed} completed, ${b.failed} failed`;
    drawing.append(svg('rect', { x, y: y(b.started), width: bar, height: height - 20 - y(b.started), class: 'bar started' }, svg('title', {}, title)));
    drawing.append(svg('rect', { x: x + bar, y: y(b.completed), width: bar, height: height - 20 - y(b.completed), class: 'bar completed' }, svg('title', {}, title)));
    drawing.append(svg('rect', { x: x + bar, y: y(b.completed + b.failed), width: bar, height: y(b.completed) - y(b.completed + b.failed), class: 'bar failed' }, svg('title', {}, title)));
  });
  const first = new Date(buckets[0].start);
  drawing.append(svg('text', { x: 0, y: height - 4, class: 'tick' }, first.toLocaleString()));
  drawing.append(svg('text', { x: width, y: height - 4, class: 'tick end' }, 'now'));
  drawing.append(svg('text', { x: 0, y: 12, class: 'tick' }, `max ${top}`));
  const total = (key) => buckets.reduce((sum, b) => sum + b[key], 0);
  return h('div', null, drawing, h('p', { class: 'legend' },
    h('span', { class: 'key started' }), `${total('started')} started `,
    h('span', { class: 'key completed' }), `${total('completed')} completed `,
    h('span', { class: 'key failed' }), `${total('failed')} failed`));
}

function taskTable(rows, columns, none) {
  if (!rows.length) return empty(none);
  return h('table', null, h('thead', null, h('tr', null, columns.map(([label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', null, rows.map((row) => h('tr', null, columns.map(([, cell]) => h('td', null, cell(row)))))));
}

function workerList(workers) {
  const alive = workers.filter((w) => w.alive);
  if (!alive.length) return empty('No live worker', 'Start one: zart worker MODULE (or zart serve MODULE --with-worker).');
  return h('ul', { class: 'plain' }, alive.map((w) => h('li', null,
    h('strong', null, w.workerId), ` · ${w.running}/${w.concurrency} busy · `, w.taskNames.join(', ') || 'every task')));
}

export async function mount(root, { params }) {
  const window = params.get('window') === 'day' ? 86400 : 3600;
  const data = h('div', { class: 'grid' });
  const toggle = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Window' },
    h('a', { href: '#/?window=hour', 'aria-current': window === 3600 ? 'true' : null }, 'Last hour'),
    h('a', { href: '#/?window=day', 'aria-current': window === 86400 ? 'true' : null }, 'Last day'));
  replace(root, h('div', { class: 'head' }, h('h1', null, 'Overview'), toggle), data);
  let last = '';
  async function refresh() {
    let stats, activity, workers;
    try {
      [stats, activity, workers] = await Promise.all([
        get('/api/v1/stats'), get('/zart/admin/v1/activity', { windowSecs: window }), get('/zart/admin/v1/workers')]);
    } catch (error) {
      replace(data, failure(error, 'the overview'));
      last = '';
      throw error;
    }
    const key = JSON.stringify([stats, activity.buckets.map((b) => [b.started, b.completed, b.failed]), activity.tasks, workers.map((w) => [w.workerId, w.alive, w.running])]);
    if (key === last) return;
    last = key;
    const slowest = activity.tasks.filter((t) => t.maxSeconds !== null).sort((a, b) => b.meanSeconds - a.meanSeconds).slice(0, 5);
    const failing = activity.tasks.filter((t) => t.failed > 0).sort((a, b) => b.failed / b.finished - a.failed / a.finished).slice(0, 5);
    const link = (t) => h('a', { href: `#/executions?task=${encodeURIComponent(t.taskName)}` }, t.taskName);
    replace(data,
      card('Executions by status', counts(stats)),
      card(`Activity, last ${window === 3600 ? 'hour' : 'day'}`, chart(activity)),
      card('Slowest tasks', taskTable(slowest, [['task', link], ['mean', (t) => duration(t.meanSeconds)], ['longest', (t) => duration(t.maxSeconds)], ['finished', (t) => t.finished]], 'Nothing completed in this window.')),
      card('Most failing tasks', taskTable(failing, [['task', (t) => h('a', { href: `#/executions?task=${encodeURIComponent(t.taskName)}&status=failed` }, t.taskName)], ['failed', (t) => `${t.failed} of ${t.finished}`], ['rate', (t) => `${Math.round((100 * t.failed) / t.finished)} %`]], 'No failures in this window.')),
      card('Live workers', workerList(workers)));
  }
  await refresh().catch(() => {});
  return { refresh };
}
