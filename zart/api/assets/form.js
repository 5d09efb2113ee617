// A form generated from a JSON schema (pydantic's): objects as fieldsets, strings, numbers,
// integers, booleans, enums, optional (anyOf null) fields; anything else as a JSON box.
import { h, parseJson } from './ui.js';

function resolve(schema, root) {
  let current = schema || {};
  for (let i = 0; i < 20 && current.$ref; i += 1) {
    const path = current.$ref.replace(/^#\//, '').split('/');
    current = path.reduce((node, key) => (node ? node[key] : undefined), root) || {};
  }
  return current;
}

function nullable(schema, root) {
  const options = schema.anyOf || schema.oneOf;
  if (!options) return [schema, false];
  const real = options.filter((o) => o.type !== 'null');
  if (real.length === 1 && real.length < options.length) return [resolve(real[0], root), true];
  return [schema, false];
}

/** A field for ``schema``; returns {element, read()} where read() gives the JSON value. */
export function field(schema, root, name, label, required) {
  const [resolved, optional] = nullable(resolve(schema, root), root);
  const title = resolved.title || label || name;
  const hint = resolved.description ? h('small', { class: 'muted' }, resolved.description) : null;
  const id = `f-${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
  const caption = h('span', null, title, required && !optional ? h('abbr', { title: 'required' }, ' *') : null);
  if (resolved.type === 'object' && resolved.properties) {
    const needed = new Set(resolved.required || []);
    const children = Object.entries(resolved.properties).map(([key, sub]) => [key, field(sub, root, `${name}.${key}`, key, needed.has(key))]);
    return {
      element: h('fieldset', { class: 'fieldset' }, h('legend', null, title), hint, children.map(([, c]) => c.element)),
      read() {
        const out = {};
        for (const [key, child] of children) {
          const v = child.read();
          if (v !== undefined) out[key] = v;
        }
        return out;
      },
    };
  }
  const empty = () => (optional ? null : undefined);
  if (Array.isArray(resolved.enum)) {
    const select = h('select', { id, name }, required ? null : h('option', { value: '' }, '—'),
      resolved.enum.map((v) => h('option', { value: JSON.stringify(v), selected: resolved.default === v }, String(v))));
    return { element: h('label', { class: 'field', for: id }, caption, select, hint), read: () => (select.value === '' ? empty() : JSON.parse(select.value)) };
  }
  if (resolved.type === 'boolean') {
    const box = h('input', { id, name, type: 'checkbox', checked: resolved.default === true });
    return { element: h('label', { class: 'field inline', for: id }, box, caption, hint), read: () => box.checked };
  }
  if (resolved.type === 'integer' || resolved.type === 'number') {
    const input = h('input', { id, name, type: 'number', step: resolved.type === 'integer' ? '1' : 'any', required: required && !optional, value: resolved.default ?? '',
      min: resolved.minimum ?? resolved.exclusiveMinimum, max: resolved.maximum ?? resolved.exclusiveMaximum });
    return { element: h('label', { class: 'field', for: id }, caption, input, hint), read: () => (input.value === '' ? empty() : Number(input.value)) };
  }
  if (resolved.type === 'string') {
    const kind = resolved.format === 'date-time' ? 'datetime-local' : resolved.format === 'date' ? 'date' : resolved.format === 'email' ? 'email' : 'text';
    const input = h('input', { id, name, type: kind, required: required && !optional, value: resolved.default ?? '',
      minlength: resolved.minLength, maxlength: resolved.maxLength, pattern: resolved.pattern });
    const read = () => {
      if (input.value === '') return required && !optional ? '' : empty();
      return kind === 'datetime-local' ? new Date(input.value).toISOString() : input.value;
    };
    return { element: h('label', { class: 'field', for: id }, caption, input, hint), read };
  }
  const box = h('textarea', { id, name, rows: 3, spellcheck: 'false', placeholder: 'JSON' }, resolved.default !== undefined ? JSON.stringify(resolved.default) : '');
  return { element: h('label', { class: 'field', for: id }, caption, h('small', { class: 'muted' }, ' (JSON)'), box, hint),
    read: () => { const v = parseJson(box.value, title); return v === null ? empty() : v; } };
}

export function schemaForm(schema) {
  return field(schema, schema, 'payload', schema.title || 'payload', true);
}
