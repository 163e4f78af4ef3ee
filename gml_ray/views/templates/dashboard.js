// gml-ray ctl serve: keeps the task list, or a task's report page (report.js), up to date by asking
// the server for what changed (gml_ray/views/live.py) and patching the page in place.
(function () {
'use strict';
const cfgs = document.querySelectorAll('#gml-live'), CFG = JSON.parse(cfgs[cfgs.length - 1].textContent);
const POLL = CFG.poll_ms || 1000, LONG_GONE_MS = 5 * 60 * 1000;
const G = window.gmlDashboard = {polls: 0, changes: 0, lastPollMs: null, lastApplyMs: null, errors: []};
const stateEl = document.getElementById('live-state');
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
const fmt = v => v === null || v === undefined ? '-' : (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)))) : String(v));
const dur = s => { if (s === null || s === undefined) return '-'; if (s < 60) return Math.max(0, s).toFixed(1) + 's';
  s = Math.round(s); const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
  const p = n => String(n).padStart(2, '0'); return h ? h + ':' + p(m) + ':' + p(x) : m + ':' + p(x); };
const clock = () => new Date().toLocaleTimeString();
let okSince = Date.now(), down = false;
function state(text, ok) { if (stateEl) { stateEl.textContent = text; stateEl.className = 'note ' + (ok ? 'on' : 'off'); } }

// Ask `url()` every POLL ms (at once while the server says there is more); `apply` the answer.
function loop(url, apply) {
  async function once() {
    const t0 = performance.now();
    let more = false;
    try {
      const r = await fetch(url(), {cache: 'no-store', credentials: 'same-origin'});
      if (!r.ok) throw new Error('HTTP ' + r.status + ': ' + (await r.text()).slice(0, 200));
      const d = await r.json();
      if (down && Date.now() - okSince > LONG_GONE_MS) { location.reload(); return; }  // a long gap: start afresh
      down = false; okSince = Date.now();
      const t1 = performance.now();
      more = (await apply(d)) === 'more';
      G.polls++; G.lastApplyMs = performance.now() - t1; G.lastPollMs = performance.now() - t0;
    } catch (err) {
      down = true; G.errors.push(String(err)); state('disconnected (' + String(err.message || err).slice(0, 80) + '), retrying', false);
    }
    setTimeout(once, more ? 0 : POLL);
  }
  once();
}

// ---- the task list -----------------------------------------------------------------------------
if (CFG.mode === 'tasks') {
  let epoch = '', version = 0;
  const rows = new Map();
  const COUNTED = [['jobs', null], ['finished', ['FINISHED']], ['running', ['RUNNING', 'PENDING']], ['paused', ['PAUSED']],
    ['early stopped', ['EARLY_STOPPED']], ['killed', ['KILLED']], ['error', ['ERROR']]];
  const elapsed = (t, now) => { const s = t.started || t.created; if (!s) return null;
    return (t.elapsed_before || 0) + Math.max(0, (t.ended || now) - s); };
  const when = ts => { if (!ts) return '-'; const d = new Date(ts * 1000), p = n => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()); };
  function render(now) {
    const list = Array.from(rows.values()).sort((a, b) => (a.created || 0) - (b.created || 0) || (a.name < b.name ? -1 : 1));
    const paused = list.some(t => t.counts.PAUSED), fronts = list.some(t => t.front !== undefined), compare = list.some(t => t.compare);
    const counted = COUNTED.filter(c => c[0] !== 'paused' || paused);
    const head = ['task', 'status', ...(compare ? ['compare'] : []), ...counted.map(c => c[0]), 'best reward',
      ...(fronts ? ['front', 'hypervolume'] : []), 'created', 'elapsed'];
    document.querySelector('#tasks thead').innerHTML = '<tr>' + head.map(h => '<th' + (h === 'task' || h === 'status' || h === 'compare' || h === 'created' ? '' : ' class="n"') + '>' + esc(h) + '</th>').join('') + '</tr>';
    document.querySelector('#tasks tbody').innerHTML = list.map(t => {
      const n = k => k === null ? Object.values(t.counts).reduce((a, b) => a + b, 0) : k.reduce((a, s) => a + (t.counts[s] || 0), 0);
      return '<tr data-task="' + esc(t.name) + '"><td><a href="/task/' + encodeURIComponent(t.name) + '">' + esc(t.name) + '</a></td>'
        + '<td class="st-' + esc(t.status) + '">' + esc(t.status) + '</td>' + (compare ? '<td>' + esc(t.compare || '-') + '</td>' : '')
        + counted.map(c => '<td class="n">' + n(c[1]) + '</td>').join('')
        + '<td class="n">' + esc(t.front !== undefined ? '-' : fmt(t.best_reward)) + '</td>'
        + (fronts ? '<td class="n">' + esc(t.front === undefined ? '-' : t.front) + '</td><td class="n">' + esc(t.front === undefined ? '-' : fmt(t.hypervolume)) + '</td>' : '')
        + '<td>' + esc(when(t.created)) + '</td><td class="n">' + esc(dur(elapsed(t, now))) + '</td></tr>';
    }).join('') || '<tr><td class="note">no tasks yet</td></tr>';
  }
  loop(() => '/api/tasks?epoch=' + epoch + '&version=' + version, d => {
    if (d.reload) rows.clear();
    d.tasks.forEach(t => rows.set(t.name, t)); d.removed.forEach(n => rows.delete(n));
    const changed = d.reload || d.tasks.length || d.removed.length || epoch !== d.epoch;
    if (changed) G.changes++;
    epoch = d.epoch; version = d.version;
    render(d.generated);  // elapsed times move every poll
    state('live, ' + rows.size + ' tasks, updated ' + clock(), true);
  });
  return;
}

// ---- a task's page (report.js draws it; this keeps it current) ---------------------------------
const curvesText = (document.getElementById('gml-curves') || {}).textContent || '';  // before report.js frees it
let epoch = CFG.epoch, version = CFG.version, rowid = CFG.rowid, started = false;
let baseCurves = null, heavyDue = false, heavyAfter = 0;  // the page's curves, inflated when a job's curve first grows
const live = new Map();  // 'tag index:job index' -> {x, y, attempt}: the curves of jobs that grew
async function inflate(b64) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  return JSON.parse(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text());
}
function sortAgain() {  // report.js sorts again (new rows join the order) by the column shown sorted
  const th = document.querySelector('#jobs th.asc, #jobs th.desc');
  if (th) { gmlReport.sort(th.textContent, th.classList.contains('asc') ? 1 : -1); return; }
  // none yet (no rewards when the page was read): the page's own first order once there are some
  const ths = Array.from(document.querySelectorAll('#jobs th')), by = t => ths.find(h => h.textContent === t);
  const first = gmlReport.data.jobs.some(j => j.reward !== null) && (by('pareto') || by('reward'));
  if (first) first.click(); else gmlReport.sort('job', 1);
}
function summary(D, s) {
  const T = D.task, J = D.jobs;
  const h1 = document.querySelector('#summary h1 span');
  if (h1) { h1.textContent = s.status; h1.className = 'st-' + s.status; }
  const meta = document.querySelector('#summary .meta');
  if (meta) meta.innerHTML = meta.innerHTML.replace(/<b>\d+<\/b> jobs/, '<b>' + J.length + '</b> jobs')
    .replace(/elapsed <b>[^<]*<\/b>/, 'elapsed <b>' + esc(dur(s.elapsed)) + '</b>').replace(/snapshot at/, 'live, updated');
  const chips = document.querySelector('#summary .chips');
  if (chips) Object.entries(s.counts).forEach(([k, n]) => {
    let b = chips.querySelector('.chip[data-status="' + k + '"]');
    if (!b) { b = document.createElement('button'); b.className = 'chip st-' + k; b.dataset.status = k; chips.appendChild(b);
      b.addEventListener('click', () => { document.getElementById('filter').value = 'status=' + k; gmlReport.filter('status=' + k); }); }
    b.textContent = k + ' ' + n; });
  if (chips) chips.querySelectorAll('.chip').forEach(b => { if (!s.counts[b.dataset.status]) b.textContent = b.dataset.status + ' 0'; });
  const best = document.querySelector('#summary .best'), bj = s.best === null ? null : J[s.best];
  if (best && bj && !s.front) best.innerHTML = 'best: <b>' + esc(bj.name) + '</b> ' + esc(T.reward_attribute) + ' = <b>' + esc(fmt(bj.reward))
    + '</b> &middot; <code>' + esc(D.arg_keys.map((k, i) => bj.args[i] === null ? null : k + '=' + fmt(bj.args[i])).filter(Boolean).join(' ')) + '</code>';
  const front = s.front ? ', front ' + s.front.size + ' jobs, hypervolume ' + fmt(s.front.hypervolume) : '';
  state('live: ' + s.status + ', ' + J.length + ' jobs' + front + ', updated ' + clock(), true);
}
function bestPlot(D) {  // the best reward so far over time, as report.js draws it, from the current rows
  const J = D.jobs, MIN = D.task.optimize_mode === 'minimize', el = document.getElementById('best-plot');
  if (!el || !el.data || !window.Plotly) return;
  const done = J.map((j, r) => ({r: r, t: j.ended || (j.reward !== null ? D.generated : null), v: j.reward}))
    .filter(p => p.v !== null && p.t !== null).sort((a, b) => a.t - b.t);
  let cur = null; const bx = [], by = [];
  done.forEach(p => { if (cur === null || (MIN ? p.v < cur : p.v > cur)) { cur = p.v; bx.push(p.t * 1000); by.push(cur); } });
  if (bx.length) { bx.push((D.task.status === 'RUNNING' ? D.generated : done[done.length - 1].t) * 1000); by.push(cur); }
  const data = el.data.map(t => ({...t}));
  if (data.length < 2) return;
  Object.assign(data[0], {type: done.length > 2000 ? 'scattergl' : 'scatter', x: done.map(p => p.t * 1000), y: done.map(p => p.v), text: done.map(p => J[p.r].name)});
  Object.assign(data[1], {x: bx, y: by});
  const layout = {...el.layout}; if (done.length) delete layout.annotations;
  Plotly.react(el, data, layout, {displaylogo: false, responsive: true});
}
// Jobs whose curves grew get a trace of their own on top of the page's ("(live)"): the page's curve
// so far and every value since. More than a dozen share a trace per colour.
const LIVE_OWN = 12, COLORS = ['#0a7ea4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
function drawLive(D) {
  if (!window.Plotly || !gmlReport.ready) return;
  D.tags.forEach((tag, ti) => {
    const div = document.getElementById('curve-' + ti); if (!div || !div.data) return;
    const series = Array.from(live.entries()).filter(([k]) => +k.split(':')[0] === ti).map(([k, s]) => ({r: +k.split(':')[1], s: s}));
    let traces;
    if (series.length <= LIVE_OWN) traces = series.map(({r, s}, k) => ({type: 'scatter', mode: s.x.length > 1 ? 'lines+markers' : 'markers',
      x: s.x, y: s.y, name: D.jobs[r].name + ' (live)', meta: 'live', line: {width: 2, color: COLORS[k % COLORS.length]}, marker: {size: 4},
      hovertemplate: esc(D.jobs[r].name) + ' (live)<br>step %{x}: %{y}<extra></extra>'}));
    else {
      traces = COLORS.map(c => ({type: 'scatter', mode: 'lines', x: [], y: [], text: [], meta: 'live', showlegend: false, line: {width: 1.5, color: c},
        hovertemplate: '%{text} (live)<br>step %{x}: %{y}<extra></extra>'}));
      series.forEach(({r, s}, k) => { const t = traces[k % COLORS.length];
        for (let i = 0; i < s.x.length; i++) { t.x.push(s.x[i]); t.y.push(s.y[i]); t.text.push(D.jobs[r].name); }
        t.x.push(null); t.y.push(null); t.text.push(''); });
      traces = traces.filter(t => t.x.length);
    }
    const old = div.data.map((t, i) => t.meta === 'live' ? i : -1).filter(i => i >= 0);
    if (old.length) Plotly.deleteTraces(div, old);
    if (traces.length) Plotly.addTraces(div, traces);
  });
}
async function addScalars(D, rows) {
  if (!rows.length) return;
  if (baseCurves === null) baseCurves = curvesText ? await inflate(curvesText).catch(() => ({})) : {};
  rows.forEach(([r, ti, step, value, attempt]) => {
    const j = D.jobs[r]; if (!j) return;
    if (j.latest) j.latest[ti] = value;
    if (typeof value !== 'number') return;
    const key = ti + ':' + r; let s = live.get(key);
    if (!s || attempt > s.attempt) {
      const e = s ? null : (baseCurves[D.tags[ti]] || []).find(e => e[0] === r);
      s = {x: e ? (e[1] || e[2].map((_, i) => i)).slice() : [], y: e ? e[2].slice() : [], attempt: attempt};
      live.set(key, s);
    }
    const x = step === null ? s.x.length : step;
    if (s.x.length && x <= s.x[s.x.length - 1]) return;  // already drawn (the page was read after it)
    s.x.push(x); s.y.push(value);
    if (s.x.length > 2000) { s.x = s.x.filter((_, i) => i % 2 === 0 || i === s.x.length - 1); s.y = s.y.filter((_, i) => i % 2 === 0 || i === s.y.length - 1); }
  });
}
async function logTail() {  // the selected job's log tails, read live
  const h = document.querySelector('#detail h2'); if (!h) return;
  const D = gmlReport.data, r = D.jobs.findIndex(j => j.name === h.textContent); if (r < 0) return;
  const el = document.getElementById('detail');
  if (el.dataset.logFor === String(r) && D.jobs[r].status !== 'RUNNING' && el.querySelector('.live-log')) return;
  const L = await (await fetch('/api/task/' + encodeURIComponent(CFG.task) + '/log/' + r, {cache: 'no-store'})).json();
  if (document.querySelector('#detail h2') !== h) return;
  Array.from(el.children).forEach(c => { if (c.matches('pre.log, .logs') || (c.classList.contains('note') && /^(no log|stdout\.log|stderr\.log)/.test(c.textContent))) c.remove(); });
  let box = el.querySelector('.live-log'); if (!box) { box = document.createElement('div'); box.className = 'live-log'; el.appendChild(box); }
  let out = '';
  ['stdout', 'stderr'].forEach(s => { if (L[s]) out += '<div class="note">' + s + '.log (tail, live)</div><pre class="log">' + esc(L[s]) + '</pre>'; });
  box.innerHTML = out || '<div class="note">no log (generate_log off, or the job wrote nothing)</div>';
  el.dataset.logFor = String(r);
}
async function apply(d) {
  const D = gmlReport.data, J = D.jobs, s = d.summary;
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (d.reload || !same(s.arg_keys, D.arg_keys) || !same(s.tags, D.tags)) { location.reload(); return; }  // new columns
  D.generated = d.generated; Object.assign(D.task, {status: s.status, message: s.message, ended: s.ended}); D.counts = s.counts;
  let grown = false, rewards = false;
  for (const [i, row] of d.jobs) {
    if (i < J.length) { rewards = rewards || J[i].reward !== row.reward || J[i].status !== row.status; Object.assign(J[i], row); }
    else if (i === J.length) { J.push({latest: D.tags.map(() => null), logs: {}, own_trace: false, ...row}); grown = true; }
    else { location.reload(); return; }
  }
  await addScalars(D, d.scalars);
  D.best = s.best;
  // Light, every poll: the rows in view drawn again from the changed data (report.js redraws them
  // on a scroll event), the summary. Heavy (a new row joins the sorted, filtered list; plots): when
  // rows came or rewards moved, at most as often as keeps it under a fifth of the time.
  heavyDue = heavyDue || grown || rewards;
  const now = performance.now();
  const heavy = heavyDue && now >= heavyAfter;
  if (heavy) {
    const t0 = performance.now();
    sortAgain(); gmlReport.filter(document.getElementById('filter').value);
    if (gmlReport.ready) bestPlot(D);
    heavyDue = false; heavyAfter = performance.now() + 4 * (performance.now() - t0);
    G.heavyMs = performance.now() - t0;
  } else if (d.jobs.length || d.scalars.length) document.querySelector('.tablewrap').dispatchEvent(new Event('scroll'));
  summary(D, s);
  if (gmlReport.ready && (d.scalars.length || heavy)) drawLive(D);  // report.js's redraw drops the live traces
  if (d.jobs.length || d.scalars.length) G.changes++;
  version = d.version; rowid = d.rowid;
  logTail().catch(() => {});
  return d.more ? 'more' : '';
}
function start() {
  if (started) return; started = true;
  const D = gmlReport.data;
  (CFG.latest || []).forEach((l, i) => { if (l && D.jobs[i]) D.jobs[i].latest = l; });
  sortAgain();
  document.getElementById('jobs').addEventListener('click', () => setTimeout(() => logTail().catch(() => {}), 50));
  document.getElementById('filter').addEventListener('input', () => setTimeout(() => drawLive(gmlReport.data), 400));
  loop(() => '/api/task/' + encodeURIComponent(CFG.task) + '/changes?epoch=' + epoch + '&version=' + version + '&rowid=' + rowid, apply);
  (function whenDrawn() { if (gmlReport.ready) drawLive(gmlReport.data); else if (!gmlReport.errors.length) setTimeout(whenDrawn, 200); })();
}
(function wait() { if (window.gmlReport && window.gmlReport.data) start(); else setTimeout(wait, 50); })();
})();
