// Queues: a place kept for them; they are being built (zart.Queue).
import { empty, h, replace } from '../ui.js';

export async function mount(root) {
  replace(root, h('h1', null, 'Queues'), h('div', { 'data-placeholder': 'queues' },
    empty('Queues are not available on this server yet.', 'Once zart.Queue ships, their limits, backlog and pause state show here.')));
  return {};
}
