window.gmlReport = {ready: false, errors: []};  // filled below; tests and benchmarks wait on it
(async function () {
'use strict';
const TM = {start: performance.now()};
// The data and plotly.js come gzip-compressed, in base64 (report.py's _pack): the browser inflates
// them natively, in a fraction of the time it would take to tokenize them as plain text.
async function unpack(id) {
  const el = document.getElementById(id), b64 = el.textContent;
  el.textContent = '';  // the text is no longer needed: free it
  const bytes = Uint8Array.fromBase64 ? Uint8Array.fromBase64(b64) : Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).blob();
}
if (typeof DecompressionStream === 'undefined') {  // Chrome 80, Firefox 113, Safari 16.4 have it
  document.getElementById('summary').textContent = 'This report needs a newer browser (one with DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or later).';
  throw new Error('no DecompressionStream in this browser');
}
const D = JSON.parse(await (await unpack('gml-data')).text());
TM.parse = performance.now();
const T = D.task, J = D.jobs, MIN = T.optimize_mode === 'minimize';
const CONF = {displaylogo: false, responsive: true};
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
const fmt = v => v === null || v === undefined ? '-' : (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)))) : (typeof v === 'object' ? JSON.stringify(v) : String(v)));
const dur = s => { if (s === null || s === undefined) return '-'; if (s < 60) return Math.max(0, s).toFixed(1) + 's';
  s = Math.round(s); const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
  const p = n => String(n).padStart(2, '0'); return h ? h + ':' + p(m) + ':' + p(x) : m + ':' + p(x); };
const when = ts => { if (!ts) return '-'; const d = new Date(ts * 1000), p = n => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()); };
const duration = j => j.started ? ((j.ended || (j.status === 'RUNNING' ? D.generated : null) || j.started) - j.started) : null;
const argText = j => D.arg_keys.map((k, i) => j.args[i] === null ? null : k + '=' + fmt(j.args[i])).filter(Boolean).join(' ');
const best = D.best === null ? null : J[D.best];
const GL_POINTS = 2000;  // more job markers than this go to WebGL: SVG makes a DOM node of each
// several objectives or constraints (report_objectives.js): null for a plain task
const MO = window.gmlObjectives(D, {esc: esc, fmt: fmt, argText: argText, shown: () => shown,
  select: r => selectJob(r), CONF: CONF, GL_POINTS: GL_POINTS});

// ---- summary ----
(function summary() {
  const order = ['FINISHED', 'RUNNING', 'PENDING', 'PAUSED', 'ERROR', 'KILLED', 'EARLY_STOPPED'];
  const keys = Object.keys(D.counts).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  let h = '<h1>' + esc(T.name) + ' <span class="st-' + esc(T.status) + '">' + esc(T.status) + '</span></h1>';
  h += '<div class="meta">' + [MO && MO.multi ? null : 'reward <b>' + esc(MIN ? 'minimize' : 'maximize') + ' ' + esc(T.reward_attribute) + '</b>',  // else: the objectives line
    T.compare ? 'compare <b>' + esc(T.compare) + '</b>' : null, '<b>' + J.length + '</b> jobs', 'elapsed <b>' + dur(D.elapsed) + '</b>',
    'started ' + esc(when(T.started || T.created)), T.ended ? 'ended ' + esc(when(T.ended)) : null,
    (T.status === 'RUNNING' ? 'snapshot' : 'report') + ' at ' + esc(when(D.generated))].filter(Boolean).join(' &middot; ') + '</div>';
  if (MO) h += MO.summary();  // the objectives, constraints, the front
  h += '<div class="chips">' + keys.map(k => '<button class="chip st-' + esc(k) + '" data-status="' + esc(k) + '">'
    + esc(k) + ' ' + D.counts[k] + '</button>').join('') + '</div>';
  h += '<div class="best">' + (best ? 'best: <b>' + esc(best.name) + '</b> ' + esc(T.reward_attribute) + ' = <b>'
    + esc(fmt(best.reward)) + '</b> &middot; <code>' + esc(argText(best)) + '</code>' : 'no job has reported ' + esc(T.reward_attribute) + ' yet') + '</div>';
  if (T.message) h += '<div class="meta">' + esc(T.message) + '</div>';
  const el = document.getElementById('summary'); el.innerHTML = h;
  el.querySelectorAll('.chip').forEach(b => b.addEventListener('click', () => {
    const f = document.getElementById('filter'); f.value = 'status=' + b.dataset.status; applyFilter(); }));
})();

// ---- job table ----
const cols = [{label: 'job', get: j => j.name, num: false},
  {label: 'status', get: j => j.status, num: false}];
if (J.some(j => j.parent !== null && j.parent !== undefined))  // PBT: the checkpoint a job continued
  cols.push({label: 'from', get: j => j.parent === null ? null : J[j.parent].name + '@' + j.parent_step, num: false});
D.arg_keys.forEach((k, i) => cols.push({label: k, get: j => j.args[i], num: J.every(j => j.args[i] === null || typeof j.args[i] === 'number')}));
if (!(MO && MO.replaces('reward'))) cols.push({label: 'reward', get: j => j.reward, num: true, first: MIN ? 1 : -1});
if (MO) cols.push(...MO.columns());  // objectives, the front's mark, constraints
D.tags.forEach((t, i) => { if (t !== T.reward_attribute && !(MO && MO.replaces(t))) cols.push({label: t, get: j => j.latest[i], num: true}); });
cols.push({label: 'duration', get: duration, num: true, show: dur});
cols.push({label: 'node', get: j => j.node, num: false});
if (J.some(j => j.message && j.status !== 'FINISHED')) cols.push({label: 'note', get: j => j.status !== 'FINISHED' ? j.message : null, num: false});
// The table draws only the rows in (and near) its scrolled window: thousands of DOM rows take
// seconds to lay out, a window of ~60 rows a few ms. Sorting and filtering work on `view` (the row
// indices in display order); spacer rows above and below keep the scrollbar true to the whole list.
const tbody = document.querySelector('#jobs tbody'), wrap = document.querySelector('.tablewrap');
const OVERSCAN = 15;
document.querySelector('#jobs thead').innerHTML = '<tr>' + cols.map((c, i) => '<th data-col="' + i + '"' + (c.num ? ' class="n"' : '')
  + (c.title ? ' title="' + esc(c.title) + '"' : '') + '>' + esc(c.label) + '</th>').join('') + '</tr>';
const cellText = (c, j) => { const v = c.get(j); return c.show ? c.show(v) : fmt(v); };
function rowHtml(r) {
  const j = J[r], cls = (r === D.best ? 'is-best' : '') + (r === selected ? ' sel' : '');
  return '<tr data-row="' + r + '"' + (cls.trim() ? ' class="' + cls.trim() + '"' : '') + '>' + cols.map(c =>
    '<td' + (c.num ? ' class="n' + (c.cls ? ' ' + c.cls(j) : '') + '"' : (c.label === 'status' ? ' class="st-' + esc(j.status) + '"' : (c.cls ? ' class="' + c.cls(j) + '"' : '')))
    + '>' + esc(cellText(c, j)) + '</td>').join('') + '</tr>';
}
let order = J.map((_, i) => i), shown = J.map(() => true), view = order, rowH = 0, selected = null;
const spacer = h => '<tr class="spacer" style="height:' + h + 'px"><td colspan="' + cols.length + '"></td></tr>';
function renderRows() {
  const h = rowH || 24, top = wrap.scrollTop, height = wrap.clientHeight || 700;
  const first = Math.max(0, Math.floor(top / h) - OVERSCAN), last = Math.min(view.length, Math.ceil((top + height) / h) + OVERSCAN);
  let out = first > 0 ? spacer(first * h) : '';
  for (let k = first; k < last; k++) out += rowHtml(view[k]);
  if (last < view.length) out += spacer((view.length - last) * h);
  tbody.innerHTML = out;
  if (!rowH) { const tr = tbody.querySelector('tr[data-row]');  // rows are one line high (nowrap): measure once
    if (tr && tr.getBoundingClientRect().height > 0) { rowH = tr.getBoundingClientRect().height; if (Math.abs(rowH - h) > 0.5) renderRows(); } }
}
let scrollPending = false;
wrap.addEventListener('scroll', () => { if (scrollPending) return; scrollPending = true;
  requestAnimationFrame(() => { scrollPending = false; renderRows(); }); });
let rowText = null;  // lower-case text of each row, for the free-text filter (built on first use)
let sortCol = -1, sortDir = 1;
function cmp(a, b) {
  if (a === b) return 0; if (a === null || a === undefined) return 1; if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return (a - b) * sortDir;
  return String(a).localeCompare(String(b), undefined, {numeric: true}) * sortDir;
}
function setView() { view = order.filter(r => shown[r]); renderRows(); }
function sortBy(ci, dir) {
  sortCol = ci; sortDir = dir; const c = cols[ci];
  const vals = J.map(c.get);
  order = J.map((_, i) => i).sort((x, y) => cmp(vals[x], vals[y]) || (c.then ? c.then(x, y) : 0) || x - y);
  setView();
  document.querySelectorAll('#jobs th').forEach((th, i) => th.className = (cols[i].num ? 'n ' : '') + (i === ci ? (dir > 0 ? 'asc' : 'desc') : ''));
}
document.querySelector('#jobs thead').addEventListener('click', e => {
  const th = e.target.closest('th'); if (!th) return; const ci = +th.dataset.col;
  sortBy(ci, ci === sortCol ? -sortDir : (cols[ci].first || 1)); });  // first: the best first

// filter: every term must match; "col op value" compares a column, anything else is a substring
const OPS = /^(.+?)(>=|<=|!=|=|>|<|~)(.*)$/;
function parseFilter(text) {
  return text.trim().split(/\s+/).filter(Boolean).map(term => {
    const m = term.match(OPS);
    if (m) { const ci = cols.findIndex(c => c.label.toLowerCase() === m[1].toLowerCase());
      if (ci >= 0) return {ci: ci, op: m[2], raw: m[3].toLowerCase(), num: m[3] !== '' && !isNaN(Number(m[3])) ? Number(m[3]) : null}; }
    return {text: term.toLowerCase()}; });
}
function match(t, j, r) {
  if (t.text !== undefined) {
    if (!rowText) rowText = J.map(j => (cols.map(c => cellText(c, j)).join(' ') + ' ' + argText(j)).toLowerCase());
    return rowText[r].includes(t.text);
  }
  const v = cols[t.ci].get(j);
  if (t.op === '~') return String(fmt(v)).toLowerCase().includes(t.raw);
  if (t.num !== null && typeof v === 'number') {
    return {'=': v === t.num, '!=': v !== t.num, '>': v > t.num, '<': v < t.num, '>=': v >= t.num, '<=': v <= t.num}[t.op]; }
  const s = v === null || v === undefined ? '-' : String(fmt(v)).toLowerCase();
  return {'=': s === t.raw, '!=': s !== t.raw, '>': s > t.raw, '<': s < t.raw, '>=': s >= t.raw, '<=': s <= t.raw}[t.op];
}
function applyFilter() {
  const terms = parseFilter(document.getElementById('filter').value);
  shown = J.map((j, r) => terms.every(t => match(t, j, r)));
  setView();
  document.getElementById('shown').textContent = view.length + ' of ' + J.length + ' jobs';
  updatePlots();
}
let filterTimer = null;
document.getElementById('filter').addEventListener('input', () => { clearTimeout(filterTimer); filterTimer = setTimeout(applyFilter, 150); });

// ---- job detail (row click) ----
tbody.addEventListener('click', e => { const tr = e.target.closest('tr[data-row]'); if (tr) selectJob(+tr.dataset.row); });
function selectJob(r) {
  selected = r; renderRows(); const j = J[r];
  const items = [['status', j.status + (j.exit_code !== null && j.exit_code !== undefined ? ' (exit ' + j.exit_code + ')' : '')],
    ['args', argText(j)], ['reward', fmt(j.reward)], ['attempt', j.attempt], ['started', when(j.started)],
    ['ended', when(j.ended)], ['duration', dur(duration(j))], ['node', j.node || '-'], ['command', j.command || '-'],
    ['job dir', j.job_dir || '-']];
  if (MO) {
    if (MO.multi) items.splice(3, 0, ...D.objectives.map((o, k) => [o.name + ' (' + o.mode + ')', fmt(j.values[k])]),
      ['Pareto front', j.pareto ? '\u25C6 on it' : 'no']);
    (D.constraints || []).forEach((c, k) => items.push([c, !j.violations ? '-' : (j.violations[k] === null ? 'broken: never reported'
      : (j.violations[k] <= 0 ? 'holds' : 'broken by ' + fmt(j.violations[k])))]));
  }
  if (j.message) items.push(['message', j.message]);
  const el = document.getElementById('detail');
  el.innerHTML = '<h2>' + esc(j.name) + '</h2><dl>' + items.map(([k, v]) => '<dt>' + esc(k) + '</dt><dd>' + esc(v) + '</dd>').join('') + '</dl>'
    + '<div class="logs note">reading the log tail...</div>';
  highlight(r);
  if (MO) MO.highlight(r);
  detailDone = logTails().then(L => {
    if (selected !== r) return;
    const lg = L[r] || {}; let h = '';
    ['stdout', 'stderr'].forEach(s => { if (lg[s]) h += '<div class="note">' + s + '.log (tail)</div><pre class="log">' + esc(lg[s]) + '</pre>'; });
    el.querySelector('.logs').outerHTML = h || '<div class="note">no log (generate_log off, or the job wrote nothing)</div>';
  });
  return detailDone;
}
// the log tails (a list by job index) come packed apart: inflated on the first row click, or once
// the plots are drawn, never before the table is shown
let logsPromise = null, detailDone = Promise.resolve();
const logTails = () => logsPromise || (logsPromise = parsed().then(() => unpack('gml-logs')).then(b => b.text()).then(JSON.parse));

// ---- curves: one plot per tag; the best and running jobs get curves of their own, the rest a band ----
const curvePlots = [];
const COLORWAY = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];  // no red: red is the best job
const BAND = -1, PICKED = -2, GROUP = -3;  // trace meta: a job's index, or one of these
// Up to INDIVIDUAL jobs get a trace (and a legend entry) each; more share one trace per colour, their
// curves separated by nulls: plotly's cost grows with the number of traces far more than with points.
const INDIVIDUAL = 12;
function stepsOf(e) { return e[1] || e[2].map((_, i) => i); }
function hoverOf(j) { return esc(j.name) + '<br>' + esc(argText(j)) + '<br>reward ' + esc(fmt(j.reward)); }
// the other jobs' curves as a median line in a 10-90% band, per step (steps binned when many)
function bandXY(entries) {
  const by = new Map(); let n = 0;
  entries.forEach(e => { if (!shown[e[0]]) return; n++; const s = stepsOf(e);
    for (let i = 0; i < s.length; i++) { let a = by.get(s[i]); if (!a) by.set(s[i], a = []); a.push(e[2][i]); } });
  let keys = Array.from(by.keys()).sort((a, b) => a - b);
  if (keys.length > 400) {  // bin the steps
    const lo = keys[0], hi = keys[keys.length - 1], w = (hi - lo) / 200, bins = new Map();
    keys.forEach(k => { const b = lo + Math.floor((k - lo) / w) * w; const a = bins.get(b); if (a) a.push(...by.get(k)); else bins.set(b, by.get(k).slice()); });
    by.clear(); bins.forEach((v, k) => by.set(k, v)); keys = Array.from(by.keys()).sort((a, b) => a - b);
  }
  const q = (a, p) => a[Math.min(a.length - 1, Math.round(p * (a.length - 1)))];
  const out = {x: keys, lo: [], mid: [], hi: [], n: n};
  // a typed array sorts numerically in native code: 10x faster than sort with a comparator
  keys.forEach(k => { const a = Float64Array.from(by.get(k)).sort(); out.lo.push(q(a, 0.1)); out.mid.push(q(a, 0.5)); out.hi.push(q(a, 0.9)); });
  return out;
}
function bandTraces(b) {
  const label = b.n + ' other jobs';
  return [{type: 'scatter', mode: 'lines', x: b.x, y: b.lo, line: {width: 0}, hoverinfo: 'skip', showlegend: false, meta: BAND},
    {type: 'scatter', mode: 'lines', x: b.x, y: b.hi, line: {width: 0}, fill: 'tonexty', fillcolor: 'rgba(140,140,150,0.25)',
      name: label + ' (10-90%)', hoverinfo: 'skip', showlegend: true, meta: BAND},
    {type: 'scatter', mode: 'lines', x: b.x, y: b.mid, line: {width: 1.5, color: 'rgba(110,110,120,0.9)', dash: 'dot'},
      name: label + ' (median)', showlegend: true, meta: BAND, hovertemplate: 'median of ' + label + '<br>step %{x}: %{y}<extra></extra>'}];
}
// the shown jobs of `own` in one trace per colour (jobs lists the jobs a trace draws)
function groupTraces(own) {
  const groups = COLORWAY.map(c => ({type: 'scatter', mode: 'lines', x: [], y: [], text: [], jobs: [], meta: GROUP,
    line: {width: 1.2, color: c}, opacity: 0.55, showlegend: false, hovertemplate: '%{text}<br>step %{x}: %{y}<extra></extra>'}));
  const dots = {type: 'scatter', mode: 'markers', x: [], y: [], text: [], jobs: [], meta: GROUP, marker: {size: 5, color: COLORWAY[0]},
    opacity: 0.7, showlegend: false, hovertemplate: '%{text}<br>step %{x}: %{y}<extra></extra>'};
  own.forEach((e, k) => {
    if (!shown[e[0]]) return;
    const g = e[2].length > 1 ? groups[k % groups.length] : dots, s = stepsOf(e), h = hoverOf(J[e[0]]);
    for (let i = 0; i < s.length; i++) { g.x.push(s[i]); g.y.push(e[2][i]); g.text.push(h); }
    if (g !== dots) { g.x.push(null); g.y.push(null); g.text.push(''); }
    g.jobs.push(e[0]);
  });
  return groups.concat([dots]).filter(g => g.jobs.length);
}
function curveTraces(p) {
  const traces = p.rest.length ? bandTraces(bandXY(p.rest)) : [];
  if (p.own.length > INDIVIDUAL) traces.push(...groupTraces(p.own));
  else p.own.forEach(e => traces.push({type: 'scatter', mode: e[2].length > 1 ? 'lines' : 'markers', x: stepsOf(e), y: e[2], name: J[e[0]].name,
    line: {width: 1.2}, opacity: 0.9, showlegend: true, meta: e[0], visible: shown[e[0]],
    hovertemplate: hoverOf(J[e[0]]) + '<br>step %{x}: %{y}<extra></extra>'}));
  p.best.forEach(e => traces.push({type: 'scatter', mode: e[2].length > 1 ? 'lines+markers' : 'markers', x: stepsOf(e), y: e[2],
    name: J[e[0]].name + ' (best)', line: {width: 3.5, color: '#d62728'}, marker: {size: 5, color: '#d62728'}, showlegend: true, meta: e[0],
    visible: shown[e[0]], hovertemplate: '<b>best</b> ' + hoverOf(J[e[0]]) + '<br>step %{x}: %{y}<extra></extra>'}));
  return traces;
}
D.tags.forEach((tag, ti) => {
  const div = document.createElement('div'); div.className = 'plot curve-plot'; div.id = 'curve-' + ti; div.dataset.tag = tag;
  document.getElementById('curves').appendChild(div);
  const layout = {title: {text: esc(tag), font: {size: 14}}, margin: {l: 55, r: 15, t: 40, b: 40}, hovermode: 'closest', colorway: COLORWAY,
    xaxis: {title: {text: 'step'}}, yaxis: {title: {text: esc(tag)}}, legend: {font: {size: 10}}, uirevision: 'keep'};
  curvePlots.push({div: div, tag: tag, layout: layout, byJob: new Map(), own: [], rest: [], best: []});
});
// the curves come packed apart (the table needs none of them): {tag: [[job index, steps|null, values]]}
const lastStep = {};  // job index -> the last step of any of its curves (the lineage plots end there)
function setCurves(curves) {
  Object.values(curves).forEach(es => es.forEach(e => { const s = stepsOf(e);
    if (s.length) lastStep[e[0]] = Math.max(lastStep[e[0]] ?? -Infinity, s[s.length - 1]); }));
  curvePlots.forEach(p => {
    const entries = curves[p.tag] || [];
    if (!entries.length) p.layout.annotations = [{text: 'no values of ' + esc(p.tag) + ' yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}];
    p.byJob = new Map(entries.map(e => [e[0], e]));
    p.own = entries.filter(e => J[e[0]].own_trace && e[0] !== D.best); p.rest = entries.filter(e => !J[e[0]].own_trace && e[0] !== D.best);
    p.best = entries.filter(e => e[0] === D.best);
  });
}
const nOwn = J.filter(j => j.own_trace).length;
document.getElementById('curves-note').textContent = (nOwn < J.length ? 'each of the ' + nOwn + ' best and running jobs has its own curve; the other ' + (J.length - nOwn) + ' are drawn as their median in a grey 10-90% band. ' : '')
  + (best ? 'The best job (' + best.name + ') is drawn in red. ' : '') + 'Click a table row to highlight its job.';

function highlight(r) {
  curvePlots.forEach(p => {
    if (!p.div.data) return;
    const idx = [], widths = [], opac = [];
    p.div.data.forEach((tr, i) => { if (tr.meta < 0) return; idx.push(i);
      widths.push(tr.meta === D.best ? 3.5 : (tr.meta === r ? 3 : 1.2));
      opac.push(tr.meta === D.best || tr.meta === r ? 1 : 0.25); });
    if (idx.length) Plotly.restyle(p.div, {'line.width': widths, opacity: opac}, idx);
    // a job without a trace of its own (grouped, or in the band) gets a temporary one on top
    const tmp = p.div.data.findIndex(tr => tr.meta === PICKED); if (tmp >= 0) Plotly.deleteTraces(p.div, tmp);
    const e = p.byJob.get(r);
    if (e && !p.div.data.some(tr => tr.meta === r)) Plotly.addTraces(p.div, {type: 'scatter', mode: e[2].length > 1 ? 'lines' : 'markers',
      x: stepsOf(e), y: e[2], name: J[r].name, meta: PICKED, line: {width: 3, color: '#1f77b4'},
      hovertemplate: hoverOf(J[r]) + '<br>step %{x}: %{y}<extra></extra>'});
  });
}

// ---- best reward so far, over time ----
function bestPlot() {
  const done = J.map((j, r) => ({r: r, t: j.ended || (j.reward !== null ? D.generated : null), v: j.reward}))
    .filter(p => p.v !== null && p.t !== null).sort((a, b) => a.t - b.t);
  let cur = null; const bx = [], by = [];
  done.forEach(p => { if (cur === null || (MIN ? p.v < cur : p.v > cur)) { cur = p.v; bx.push(p.t * 1000); by.push(cur); } });
  if (bx.length) { bx.push((T.status === 'RUNNING' ? D.generated : done[done.length - 1].t) * 1000); by.push(cur); }
  const traces = [{type: done.length > GL_POINTS ? 'scattergl' : 'scatter', mode: 'markers', name: 'job reward', x: done.map(p => p.t * 1000), y: done.map(p => p.v),
      marker: {size: 5, color: 'rgba(31,119,180,0.5)'}, text: done.map(p => J[p.r].name), hovertemplate: '%{text}: %{y}<extra></extra>'},
    {type: 'scatter', mode: 'lines', name: 'best so far', x: bx, y: by, line: {shape: 'hv', width: 2.5, color: '#d62728'}, hovertemplate: 'best %{y}<extra></extra>'}];
  const layout = {title: {text: 'best ' + esc(T.reward_attribute) + ' so far', font: {size: 14}}, margin: {l: 55, r: 15, t: 40, b: 40},
    xaxis: {type: 'date', title: {text: 'time'}}, yaxis: {title: {text: esc(T.reward_attribute)}}, legend: {orientation: 'h', y: -0.2}};
  if (!done.length) layout.annotations = [{text: 'no rewards yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}];
  return Plotly.newPlot('best-plot', traces, layout, CONF);
}

// ---- PBT: the args each final member's line had, step by step (its chain of parents) ----
function lineages() {
  const children = new Set(J.filter(j => j.parent !== null && j.parent !== undefined).map(j => j.parent));
  if (!children.size) return [];
  // a final member: a job that ran to its end (the ones PBT stopped are EARLY_STOPPED)
  return J.map((j, r) => r).filter(r => J[r].status === 'FINISHED').map(r => {
    const chain = []; let cur = r, until = null;
    while (cur !== null && cur !== undefined && chain.length < 10000) {
      const j = J[cur], from = (j.parent === null || j.parent === undefined) ? 0 : j.parent_step + 1;
      chain.unshift({r: cur, from: from, until: until}); until = from - 1; cur = j.parent;
    }
    return {r: r, chain: chain};
  });
}
function lineagePlots() {
  const lines = lineages();
  if (!lines.length) return;
  document.getElementById('lineage-section').hidden = false;
  const box = document.getElementById('lineage');
  D.arg_keys.forEach((k, i) => {
    const traces = lines.map(line => {
      const x = [], y = [];
      line.chain.forEach(seg => { const v = J[seg.r].args[i]; if (typeof v !== 'number') return;
        const end = seg.until === null ? Math.max(seg.from, lastStep[line.r] ?? seg.from) : seg.until;
        x.push(seg.from, end); y.push(v, v); });
      return {type: 'scatter', mode: 'lines', x: x, y: y, name: J[line.r].name, line: {shape: 'hv'},
              hovertemplate: esc(J[line.r].name) + ': ' + esc(k) + ' %{y} at step %{x}<extra></extra>'};
    }).filter(t => t.x.length);
    if (!traces.length) return;
    const div = document.createElement('div'); div.className = 'plot'; box.appendChild(div);
    Plotly.newPlot(div, traces, {title: {text: esc(k) + ' over steps', font: {size: 14}}, margin: {l: 55, r: 15, t: 40, b: 40},
      xaxis: {title: {text: 'step'}}, yaxis: {title: {text: esc(k)}}, legend: {orientation: 'h', y: -0.2}}, CONF);
  });
}

// ---- parallel coordinates: args vs reward (jobs with a reward, as filtered) ----
function dims(rows) {
  const out = [];
  D.arg_keys.forEach((k, i) => {
    const vals = rows.map(r => J[r].args[i]);
    const allNum = vals.every(v => typeof v === 'number'), someNum = vals.some(v => typeof v === 'number');
    if (allNum) {
      const lo = vals.reduce((a, b) => Math.min(a, b), Infinity), hi = vals.reduce((a, b) => Math.max(a, b), -Infinity);
      if (lo > 0 && hi / lo >= 100) {  // log-scaled arg: plot log10, label with the values
        const ticks = []; for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) ticks.push(e);
        out.push({label: k + ' (log)', values: vals.map(v => Math.log10(v)), tickvals: ticks, ticktext: ticks.map(e => fmt(Math.pow(10, e)))});
      } else out.push({label: k, values: vals});
      return;
    }
    const cats = Array.from(new Set(vals.map(v => v === null ? '-' : (someNum && typeof v === 'number' ? v : fmt(v)))));
    cats.sort((a, b) => (a === '-') - (b === '-') || (typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b))));
    const pos = new Map(cats.map((c, n) => [c, n]));
    const d = {label: k, values: vals.map(v => pos.get(v === null ? '-' : (someNum && typeof v === 'number' ? v : fmt(v)))), tickvals: cats.map((_, n) => n)};
    d.ticktext = cats.length <= 40 ? cats.map(c => String(c).slice(0, 24)) : cats.map(() => '');
    if (cats.length === 1) d.range = [-1, 1];
    out.push(d);
  });
  out.push({label: T.reward_attribute, values: rows.map(r => J[r].reward)});
  return out;
}
let parcoords = null;
function drawParcoords() {
  const rows = J.map((j, r) => r).filter(r => J[r].reward !== null && shown[r]), el = document.getElementById('parcoords');
  if (!rows.length) { el.innerHTML = '<div class="empty">args vs ' + esc(T.reward_attribute) + ': no rewards yet</div>'; parcoords = {lines: 0}; return; }
  parcoords = gmlParcoords(el, {title: 'args vs ' + T.reward_attribute + ' (' + rows.length + ' jobs)', dims: dims(rows),
    color: rows.map(r => J[r].reward), reverse: MIN, colorLabel: T.reward_attribute});
}
let resizeTimer = null;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => parcoords && parcoords.draw && parcoords.draw(), 200); });

function updatePlots() {
  curvePlots.forEach(p => { if (p.div.data) Plotly.react(p.div, curveTraces(p), p.layout, CONF); });
  if (selected !== null && window.Plotly) highlight(selected);
  if (parcoords) drawParcoords();
  if (MO) MO.update();
}

// ---- draw, then tell whoever waits (tests, benchmarks) that the page is ready ----
Object.assign(window.gmlReport, {data: D, select: selectJob, detail: () => detailDone,
  filter: text => { document.getElementById('filter').value = text; applyFilter(); return view.length; },
  sort: (label, dir) => sortBy(cols.findIndex(c => c.label === label), dir || 1),
  rows: () => view.map(r => J[r].name), parcoords: () => parcoords,
  // per curve plot: jobs drawn with a curve of their own (a trace each, or in a shared trace)
  ownCurves: () => curvePlots.map(p => (p.div.data || []).reduce((n, t) => n + (t.meta >= 0 ? 1 : (t.meta === GROUP ? t.jobs.length : 0)), 0))});
window.gmlReport.timings = TM;
document.getElementById('shown').textContent = J.length + ' of ' + J.length + ' jobs';
const ri = cols.findIndex(c => c.label === (MO && MO.multi ? 'pareto' : 'reward'));  // the front (or the best) first
if (J.some(j => j.reward !== null)) sortBy(ri, cols[ri].first); else renderRows();
TM.sorted = performance.now();
// The table is painted before plotly.js (5 MB, a second or more to compile and run) is even
// loaded; then it is loaded through a blob: URL, so that Chromium compiles it off the main thread
// (an inline script compiles on it: 15-20% slower here). Then the plots
// are drawn one at a time, each after the page has had a chance to paint and respond.
const tick = () => new Promise(ok => setTimeout(ok, 0));
const painted = () => new Promise(ok => { const t = setTimeout(ok, 200); requestAnimationFrame(() => { clearTimeout(t); setTimeout(ok, 0); }); });
const parsed = () => new Promise(ok => document.readyState === 'loading' ? document.addEventListener('DOMContentLoaded', ok) : ok());
async function loadPlotly() {
  if (window.Plotly) return;
  const js = new Blob([await unpack('plotly-js')], {type: 'text/javascript'}), url = URL.createObjectURL(js);
  await new Promise(ok => { const s = document.createElement('script'); s.src = url; s.onload = ok;
    s.onerror = async () => {  // blob: scripts refused (a strict CSP): run it inline
      const inline = document.createElement('script'); inline.textContent = await js.text(); document.head.appendChild(inline); ok(); };
    document.head.appendChild(s); });
  URL.revokeObjectURL(url);
}
(async () => {
  await painted(); TM.painted = performance.now();
  // plotly compiles in the background while the canvas is drawn and the curves are read
  const plotly = parsed().then(loadPlotly);
  drawParcoords(); TM.parcoords = performance.now();
  await parsed(); setCurves(JSON.parse(await (await unpack('gml-curves')).text())); TM.curveData = performance.now();
  await plotly; TM.plotly = performance.now();
  for (const p of curvePlots) { await tick(); await Plotly.newPlot(p.div, curveTraces(p), p.layout, CONF); }
  TM.curves = performance.now();
  await tick(); await bestPlot();
  TM.best = performance.now();
  if (MO) { await tick(); await MO.draw(); }
  await tick(); lineagePlots();
  if (selected !== null) highlight(selected);
  window.gmlReport.ready = true; window.gmlReport.readyMs = performance.now();
  await tick(); await logTails();
})().catch(err => { window.gmlReport.errors.push(String(err && err.stack || err)); console.error(err); });
})().catch(err => { window.gmlReport.errors.push(String(err && err.stack || err)); console.error(err); });
