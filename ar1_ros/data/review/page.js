/* The review page of `ar1 label review` (inlined by ar1_ros/data/review_page.py).
 *
 * It reads the JSON block #review-data and keeps one state per label: its status (pending:
 * the draft as written; accepted: kept as shown; edited: decision, CoC or components changed;
 * rejected: left out of the export) and its fields. The consistency verdict of a decision is
 * looked up in the label's table {decision: true, false or null} that Python computed with
 * meta_actions.compatible, so the rule exists once. States other than pending are saved in
 * localStorage under the labels file's sha256: a reload resumes the review of that file.
 *
 * Export writes every label that is not rejected, in the input order; accepted and edited
 * ones become provenance 'human' with `consistent` recomputed and a review note appended.
 */
'use strict';

const data = JSON.parse(document.getElementById('review-data').textContent);
const storeKey = 'ar1-label-review:' + data.sha256;
const items = data.items;
const cards = items.map((item, i) => document.getElementById('card-' + i));
const STATUSES = ['pending', 'accepted', 'edited', 'rejected'];
const VERDICT = {
  true: ['consistent', 'consistent with the recorded meta-action'],
  false: ['inconsistent', 'INCONSISTENT with the recorded meta-action'],
  null: ['unknown', 'consistency unknown (no meta-action)'],
};
let states = items.map(draftState);
let current = 0;
let filter = 'all';

function draftState(item) {
  const lb = item.label;
  return {status: 'pending', decision: lb.decision, coc: lb.coc,
          components: lb.critical_components.slice()};
}

function control(i, role) {
  return cards[i].querySelector('[data-role="' + role + '"]');
}

// Components are edited one per line; blank lines are no component.
function lines(text) {
  return text.split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
}

function readControls(i) {
  return {decision: control(i, 'decision').value, coc: control(i, 'coc').value,
          components: lines(control(i, 'components').value)};
}

function writeControls(i) {
  const st = states[i];
  control(i, 'decision').value = st.decision;
  control(i, 'coc').value = st.coc;
  control(i, 'components').value = st.components.join('\n');
}

function changed(i, fields) {
  const lb = items[i].label;
  return fields.decision !== lb.decision || fields.coc.trim() !== lb.coc.trim() ||
    fields.components.join('\n') !== lines(lb.critical_components.join('\n')).join('\n');
}

function verdict(i) {
  const value = items[i].compatible[states[i].decision];
  return value === undefined ? null : value;
}

function showError(text) {
  const box = document.getElementById('errors');
  box.hidden = false;
  box.textContent = text;
}

function render(i) {
  const st = states[i];
  const [css, text] = VERDICT[verdict(i)];
  cards[i].dataset.status = st.status;
  cards[i].dataset.consistent = css;
  control(i, 'status').textContent =
    st.status + (st.status === 'edited' && !st.coc.trim() ? ': the CoC is empty' : '');
  const shown = control(i, 'verdict');
  shown.className = 'verdict ' + css;
  shown.textContent = text;
}

function save() {
  const saved = {};
  states.forEach((st, i) => {
    if (st.status !== 'pending') saved[items[i].key] = st;
  });
  try {
    window.localStorage.setItem(storeKey, JSON.stringify(saved));
  } catch (err) {
    showError('cannot save the review in this browser: ' + err.message);
  }
}

function usable(st) {
  return st && STATUSES.includes(st.status) && data.decisions.includes(st.decision) &&
    typeof st.coc === 'string' && Array.isArray(st.components);
}

function load() {
  let saved = {};
  try {
    saved = JSON.parse(window.localStorage.getItem(storeKey) || '{}') || {};
  } catch (err) {
    showError('the saved review cannot be read (' + err.message + '); starting afresh');
  }
  items.forEach((item, i) => {
    const st = saved[item.key];
    if (usable(st)) {
      states[i] = {status: st.status, decision: st.decision, coc: st.coc,
                   components: st.components.map(String)};
    }
    writeControls(i);
    render(i);
  });
}

function counter() {
  const n = {pending: 0, accepted: 0, edited: 0, rejected: 0};
  states.forEach((st) => { n[st.status] += 1; });
  const shown = cards.filter((card) => !card.hidden).length;
  document.getElementById('counter').textContent =
    `${items.length} labels: ${n.accepted} accepted, ${n.edited} edited, ` +
    `${n.rejected} rejected, ${n.pending} pending; ${shown} shown`;
  document.getElementById('export-info').textContent =
    `${items.length - n.rejected} to export, ${n.rejected} rejected left out`;
}

function visible(i) {
  if (filter === 'pending') return states[i].status === 'pending';
  if (filter === 'inconsistent') return verdict(i) === false;
  return true;
}

function applyFilter() {
  cards.forEach((card, i) => { card.hidden = !visible(i); });
  document.querySelectorAll('[data-filter]').forEach((button) => {
    button.classList.toggle('active', button.dataset.filter === filter);
  });
  counter();
}

function update(i, refilter) {
  render(i);
  save();
  if (refilter) applyFilter(); else counter();
}

// Typing never hides the card being edited; the buttons re-apply the filter.
function onEdit(i) {
  const fields = readControls(i);
  Object.assign(states[i], fields);
  if (changed(i, fields)) states[i].status = 'edited';
  else if (states[i].status === 'edited') states[i].status = 'pending';
  update(i, false);
}

function accept(i) {
  const fields = readControls(i);
  Object.assign(states[i], fields, {status: changed(i, fields) ? 'edited' : 'accepted'});
  update(i, true);
}

function reject(i) {
  states[i].status = 'rejected';
  update(i, true);
}

function reset(i) {
  states[i] = draftState(items[i]);
  writeControls(i);
  update(i, true);
}

function setCurrent(i, scroll) {
  if (!cards.length) return;
  cards[current].classList.remove('current');
  current = i;
  cards[i].classList.add('current');
  if (scroll) cards[i].scrollIntoView({block: 'start'});
}

function step(delta) {
  for (let i = current + delta; i >= 0 && i < cards.length; i += delta) {
    if (!cards[i].hidden) {
      setCurrent(i, true);
      return;
    }
  }
}

// t0_ns travels as a string (it exceeds 2^53) and is written back as a JSON integer.
function exportedLine(i) {
  const lb = items[i].label;
  const st = states[i];
  const out = Object.assign({}, lb);
  delete out.bag;
  delete out.t0_ns;
  if (st.status === 'edited') {
    Object.assign(out, {decision: st.decision, coc: st.coc.trim(),
                        critical_components: st.components.slice()});
  }
  if (st.status === 'accepted' || st.status === 'edited') {
    const note = st.status === 'accepted' ? 'reviewed: accepted'
      : 'reviewed: edited from ' + lb.provenance + ' draft';
    Object.assign(out, {provenance: 'human', consistent: verdict(i),
                        notes: lb.notes ? lb.notes + '; ' + note : note});
  }
  return '{"bag":' + JSON.stringify(lb.bag) + ',"t0_ns":' + lb.t0_ns + ',' +
    JSON.stringify(out).slice(1);
}

function exportJsonl() {
  const order = items.map((item, i) => i);
  const empty = order.filter((i) => states[i].status === 'edited' && !states[i].coc.trim());
  if (empty.length) {
    showError('not exported: the CoC of ' + empty.map((i) => items[i].key).join(', ') +
              ' is empty; write one or reset the label');
    setCurrent(empty[0], true);
    return;
  }
  const kept = order.filter((i) => states[i].status !== 'rejected');
  const text = kept.map((i) => exportedLine(i) + '\n').join('');
  const url = URL.createObjectURL(new Blob([text], {type: 'application/x-ndjson'}));
  const link = document.createElement('a');
  link.href = url;
  link.download = data.export_name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60000);
  document.getElementById('export-info').textContent =
    `exported ${kept.length} labels as ${data.export_name}, ` +
    `${items.length - kept.length} rejected left out`;
}

function clearSaved() {
  if (!window.confirm('Forget every verdict and edit of this review?')) return;
  window.localStorage.removeItem(storeKey);
  states = items.map(draftState);
  items.forEach((item, i) => { writeControls(i); render(i); });
  applyFilter();
}

function wire(i) {
  cards[i].addEventListener('focusin', () => setCurrent(i, false));
  cards[i].addEventListener('click', () => setCurrent(i, false));
  control(i, 'decision').addEventListener('change', () => onEdit(i));
  control(i, 'coc').addEventListener('input', () => onEdit(i));
  control(i, 'components').addEventListener('input', () => onEdit(i));
  control(i, 'accept').addEventListener('click', () => accept(i));
  control(i, 'reject').addEventListener('click', () => reject(i));
  control(i, 'reset').addEventListener('click', () => reset(i));
}

function onKey(event) {
  const tag = event.target.tagName;
  if (event.ctrlKey || event.metaKey || event.altKey || !cards.length ||
      tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
  if (event.key === 'j') step(1);
  else if (event.key === 'k') step(-1);
  else if (event.key === 'a') accept(current);
  else return;
  event.preventDefault();
}

function start() {
  cards.forEach((card, i) => wire(i));
  document.querySelectorAll('[data-filter]').forEach((button) => {
    button.addEventListener('click', () => {
      filter = button.dataset.filter;
      applyFilter();
    });
  });
  document.getElementById('export').addEventListener('click', exportJsonl);
  document.getElementById('clear-saved').addEventListener('click', clearSaved);
  document.addEventListener('keydown', onKey);
  load();
  applyFilter();
  setCurrent(0, false);
}

start();
