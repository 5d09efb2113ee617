// The dashboard's shell: hash routes (deep links keep every filter), theme, live refresh.
import { h, parseHash, replace, toast } from './ui.js';
import * as overview from './views/overview.js';
import * as executions from './views/executions.js';
import * as execution from './views/execution.js';
import * as start from './views/start.js';
import * as schedules from './views/schedules.js';
import * as pause from './views/pause.js';
import * as workers from './views/workers.js';
import * as queues from './views/queues.js';

/** Seconds between refreshes of the screen shown (while the tab is visible). */
const REFRESH_SECONDS = 3;

const routes = [
  [/^\/?$/, 'overview', overview],
  [/^\/executions\/(.+)$/, 'executions', execution],
  [/^\/executions\/?$/, 'executions', executions],
  [/^\/start\/?$/, 'start', start],
  [/^\/schedules\/?$/, 'schedules', schedules],
  [/^\/pause\/?$/, 'pause', pause],
  [/^\/workers\/?$/, 'workers', workers],
  [/^\/queues\/?$/, 'queues', queues],
];

let current = null;
let timer = null;
let generation = 0;

async function show() {
  const { path, params } = parseHash();
  const main = document.getElementById('main');
  if (current && current.dispose) current.dispose();
  current = null;
  generation += 1;
  const mine = generation;
  const found = routes.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.toggleAttribute('aria-current', found !== undefined && link.dataset.nav === found[1]);
  }
  if (!found) {
    replace(main, h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, 'No such screen'),
      h('p', null, h('a', { href: '#/' }, 'Back to the overview'))));
    return;
  }
  const [pattern, , view] = found;
  const match = path.match(pattern);
  const root = h('div', { class: 'screen' });
  replace(main, root);
  const mounted = await view.mount(root, { params, match: match.slice(1).map(decodeURIComponent) });
  if (mine !== generation) return;
  current = mounted;
  document.title = `${root.querySelector('h1')?.textContent || 'Zart'} · Zart`;
}

async function tick() {
  clearTimeout(timer);
  if (current && current.refresh && document.visibilityState === 'visible') {
    const live = document.getElementById('live');
    try {
      await current.refresh();
      live.classList.remove('stale');
      live.textContent = 'live';
    } catch (error) {
      live.classList.add('stale');
      live.textContent = 'offline';
    }
  }
  timer = setTimeout(tick, REFRESH_SECONDS * 1000);
}

function theme() {
  const saved = localStorage.getItem('zart-theme');
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === 'dark'
      : matchMedia('(prefers-color-scheme: dark)').matches;
    const next = dark ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('zart-theme', next);
  });
}

window.addEventListener('hashchange', () => { show().catch((e) => toast(e.message, 'error')); });
window.addEventListener('unhandledrejection', (event) => {
  toast(event.reason?.message || String(event.reason), 'error');
});
theme();
show().then(() => { timer = setTimeout(tick, REFRESH_SECONDS * 1000); }).catch((e) => toast(e.message, 'error'));
