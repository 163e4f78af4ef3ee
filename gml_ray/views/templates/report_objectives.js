// The page's part for a task with several objectives or constraints (report_objectives.py builds
// its data): the table's objective, Pareto and constraint columns, the summary's front, the
// objective-vs-objective scatter (the front joined by a step line, infeasible jobs as grey x), a
// scatter matrix for 3+ objectives, and the hypervolume over time.
// gmlObjectives(D, ui) returns null for a plain task, else {multi, columns(), replaces(label),
// summary(), draw(), update(), highlight(r)}; ui = {esc, fmt, argText, shown: () => the filter's
// flags, select(r), CONF, GL_POINTS}.
window.gmlObjectives = function (D, ui) {
  'use strict';
  if (!D.objectives) return null;
  const J = D.jobs, O = D.objectives, C = D.constraints || [], F = D.front || {}, multi = O.length > 1;
  const {esc, fmt} = ui;
  const PICKED = -2;
  const minimized = k => O[k].mode === 'minimize';
  const better = k => (a, b) => { const x = J[a].values[k], y = J[b].values[k];  // best first, missing last
    if (x === y) return 0; if (x === null) return 1; if (y === null) return -1; return minimized(k) ? x - y : y - x; };
  const label = k => O[k].name + (minimized(k) ? ' (min)' : ' (max)');
  // where a job goes in the plots: on the front, dominated, infeasible, or with no result that counts
  const kind = j => j.feasible === false ? 'infeasible' : (j.pareto ? 'front' : (j.reward !== null && j.status !== 'ERROR' ? 'dominated' : 'noresult'));
  const KINDS = {
    dominated: {name: 'dominated', marker: {size: 7, color: 'rgba(31,119,180,0.55)', symbol: 'circle'}},
    noresult: {name: 'ERROR / no result', marker: {size: 7, color: 'rgba(120,120,130,0.7)', symbol: 'circle-open'}},
    infeasible: {name: 'infeasible', marker: {size: 8, color: '#8c8c8c', symbol: 'x'}},
    front: {name: 'Pareto front', marker: {size: 11, color: '#d62728', symbol: 'diamond', line: {width: 1, color: '#7a1112'}}},
  };
  const hover = r => { const j = J[r];
    return '<b>' + esc(j.name) + '</b> ' + esc(j.status) + (j.pareto ? ' &#9670; front' : '') + (j.feasible === false ? ' (infeasible)' : '')
      + '<br>' + O.map((o, k) => esc(o.name) + ' = ' + esc(fmt(j.values[k]))).join('<br>') + '<br>' + esc(ui.argText(j)); };

  // ---- table columns ----
  function columns() {
    const cols = [];
    if (multi) {
      O.forEach((o, k) => cols.push({label: o.name, get: j => j.values[k], num: true, first: minimized(k) ? 1 : -1,
        title: (minimized(k) ? 'minimized' : 'maximized') + ': the last value the job reported'}));
      // the front first (either direction: a blank sorts last), then by the first objective
      cols.push({label: 'pareto', get: j => j.pareto ? '\u25C6' : null, num: false, first: 1, then: better(0),
        cls: j => j.pareto ? 'front-mark' : '', title: '\u25C6: on the Pareto front (no other feasible job with a result is better on every objective)'});
    }
    if (C.length) {
      cols.push({label: 'feasible', get: j => j.feasible === null || j.feasible === undefined ? null : (j.feasible ? 'yes' : 'no'), num: false,
        cls: j => j.feasible === false ? 'broken' : '', title: 'every constraint holds (a constraint whose scalar was never reported does not)'});
      C.forEach((text, k) => cols.push({label: text, num: true, title: 'how far past the bound the last value is: <= 0 holds, > 0 broken',
        get: j => !j.violations ? null : (j.violations[k] === null ? Infinity : j.violations[k]),
        show: v => v === null || v === undefined ? '-' : (v === Infinity ? '\u2717 not reported' : (v <= 0 ? '\u2713 ' + fmt(v) : '\u2717 +' + fmt(v))),
        cls: j => j.violations && (j.violations[k] === null || j.violations[k] > 0) ? 'broken' : ''}));
    }
    return cols;
  }
  // the table's own columns that the objective columns replace (their values, once more)
  const replaces = label => multi && (label === 'reward' || O.some(o => o.name === label));

  // ---- summary ----
  function summary() {
    const parts = multi ? ['objectives ' + O.map(o => '<b>' + esc(o.mode + ' ' + o.name) + '</b>').join(', ')] : [];  // one: the reward, above
    if (C.length) parts.push('constraints ' + C.map(c => '<b>' + esc(c) + '</b>').join(', '),
      'feasible <b>' + J.filter(j => j.feasible === true).length + '</b> of ' + J.filter(j => j.feasible !== null && j.feasible !== undefined).length);
    let h = '<div class="meta objectives">' + parts.join(' &middot; ');
    if (multi) h += ' &middot; Pareto front <b>' + (F.size || 0) + '</b> jobs &middot; hypervolume ' + (F.computed === false
      ? 'not computed (too many points in ' + O.length + ' objectives)' : '<b>' + esc(fmt(F.hypervolume)) + '</b>'
      + (F.reference ? ' <span title="the point the volume is measured from">(reference ' + esc(F.reference.map(fmt).join(', ')) + ')</span>' : ''));
    return h + '</div>';
  }

  // ---- plots (several objectives) ----
  const sel = [0, 1], el = id => document.getElementById(id);
  let picked = null;
  // jobs to draw: shown by the filter, with a value of the plotted objectives
  const drawn = ks => J.map((_, r) => r).filter(r => ui.shown()[r] && J[r].values && ks.every(k => J[r].values[k] !== null));
  // the front of the two plotted objectives among the front's jobs (the whole front, with two),
  // by x: the step line joins them through the corners of the region they dominate
  function front2(rows, xi, yi) {
    const s = r => [minimized(xi) ? -J[r].values[xi] : J[r].values[xi], minimized(yi) ? -J[r].values[yi] : J[r].values[yi]];
    const pts = rows.filter(r => J[r].pareto).map(r => ({r: r, s: s(r)}));
    const keep = pts.filter(p => !pts.some(q => q.s[0] >= p.s[0] && q.s[1] >= p.s[1] && (q.s[0] > p.s[0] || q.s[1] > p.s[1])));
    return keep.map(p => p.r).sort((a, b) => J[a].values[xi] - J[b].values[xi] || J[a].values[yi] - J[b].values[yi]);
  }
  function scatterTraces() {
    const [xi, yi] = sel, rows = drawn([xi, yi]), type = rows.length > ui.GL_POINTS ? 'scattergl' : 'scatter';
    const traces = ['dominated', 'noresult', 'infeasible', 'front'].map(k => {
      const rs = rows.filter(r => kind(J[r]) === k);
      return {type: type, mode: 'markers', name: KINDS[k].name, marker: KINDS[k].marker, meta: k, customdata: rs,
        x: rs.map(r => J[r].values[xi]), y: rs.map(r => J[r].values[yi]), text: rs.map(hover), hovertemplate: '%{text}<extra></extra>'};
    }).filter(t => t.x.length);
    const line = front2(rows, xi, yi);
    if (line.length) traces.splice(traces.length - 1, 0, {type: 'scatter', mode: 'lines', meta: 'front-line', hoverinfo: 'skip',
      name: O.length > 2 ? 'front of these two' : 'Pareto front (step)', showlegend: O.length > 2,
      line: {shape: minimized(xi) ? 'hv' : 'vh', width: 1.5, color: 'rgba(214,39,40,0.6)'},
      x: line.map(r => J[r].values[xi]), y: line.map(r => J[r].values[yi])});
    const ring = pickedTrace(); if (ring) traces.push(ring);
    return traces;
  }
  // a ring around the job picked in the table (none when it is not drawn)
  function pickedTrace() {
    const [xi, yi] = sel, j = picked === null ? null : J[picked];
    if (!j || !ui.shown()[picked] || !j.values || j.values[xi] === null || j.values[yi] === null) return null;
    return {type: 'scatter', mode: 'markers', name: j.name, meta: PICKED, showlegend: false, hoverinfo: 'skip',
      x: [j.values[xi]], y: [j.values[yi]], marker: {size: 16, color: 'rgba(0,0,0,0)', line: {width: 2, color: '#1d2330'}}};
  }
  function scatterLayout() {
    const [xi, yi] = sel, n = drawn([xi, yi]).length;
    const layout = {title: {text: esc(O[xi].name) + ' vs ' + esc(O[yi].name) + ' (' + n + ' jobs)', font: {size: 14}},
      margin: {l: 60, r: 15, t: 40, b: 45}, hovermode: 'closest', uirevision: sel.join(','),
      xaxis: {title: {text: esc(label(xi))}}, yaxis: {title: {text: esc(label(yi))}}, legend: {orientation: 'h', y: -0.2}};
    if (!n) layout.annotations = [{text: 'no job has values of both yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}];
    return layout;
  }
  function splomTraces() {
    const rows = drawn(O.map((_, k) => k));
    return ['dominated', 'noresult', 'infeasible', 'front'].map(k => {
      const rs = rows.filter(r => kind(J[r]) === k);
      return {type: 'splom', name: KINDS[k].name, meta: k, customdata: rs, text: rs.map(hover), hovertemplate: '%{text}<extra></extra>',
        marker: Object.assign({}, KINDS[k].marker, {size: Math.max(4, KINDS[k].marker.size - 2)}),
        dimensions: O.map((o, d) => ({label: o.name, values: rs.map(r => J[r].values[d])})),
        showupperhalf: false, diagonal: {visible: false}};
    }).filter(t => t.customdata.length);
  }
  const splomLayout = () => ({title: {text: 'every pair of objectives', font: {size: 14}}, height: Math.max(480, 200 * O.length),
    margin: {l: 60, r: 15, t: 40, b: 90}, hovermode: 'closest', dragmode: 'select', legend: {orientation: 'h', y: -0.12}});
  function hvPlot() {
    const S = D.hypervolume || [], x = S.map(p => p[0] * 1000), y = S.map(p => p[1]);
    const text = S.map(p => esc(J[p[2]].name) + ' ended');
    if (S.length) { x.push((D.task.status === 'RUNNING' ? D.generated : S[S.length - 1][0]) * 1000); y.push(S[S.length - 1][1]); text.push('now'); }
    const layout = {title: {text: 'hypervolume over time', font: {size: 14}}, margin: {l: 60, r: 15, t: 40, b: 40},
      xaxis: {type: 'date', title: {text: 'time'}}, yaxis: {title: {text: 'hypervolume'}, rangemode: 'tozero'}, showlegend: false};
    if (!S.length) layout.annotations = [{text: F.computed === false ? 'not computed: too many points in ' + O.length + ' objectives' : 'no job on a front yet',
      showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}];
    return Plotly.newPlot('hv-plot', [{type: 'scatter', mode: 'lines+markers', x: x, y: y, text: text, line: {shape: 'hv', width: 2.5, color: '#d62728'},
      marker: {size: 4}, hovertemplate: '%{text}<br>hypervolume %{y}<extra></extra>'}], layout, ui.CONF);
  }
  const onClick = ev => { const p = ev.points && ev.points[0];
    if (p && typeof p.customdata === 'number') ui.select(p.customdata); };
  let plotted = false;
  async function draw() {
    if (!multi) return;
    el('pareto-section').hidden = false;
    if (O.length > 2) {
      el('pareto-controls').hidden = false;
      ['obj-x', 'obj-y'].forEach((id, a) => { const s = el(id);
        s.innerHTML = O.map((o, k) => '<option value="' + k + '"' + (k === sel[a] ? ' selected' : '') + '>' + esc(o.name) + '</option>').join('');
        s.addEventListener('change', () => { sel[a] = +s.value; update(true); }); });
    }
    await Plotly.newPlot('pareto-plot', scatterTraces(), scatterLayout(), ui.CONF);
    el('pareto-plot').on('plotly_click', onClick);
    await hvPlot();
    if (O.length > 2) {
      el('splom-plot').hidden = false;
      await Plotly.newPlot('splom-plot', splomTraces(), splomLayout(), ui.CONF);
      el('splom-plot').on('plotly_click', onClick);
    }
    plotted = true;
  }
  function update(pairOnly) {  // the filter changed (or only the pair to plot)
    if (!plotted) return;
    Plotly.react('pareto-plot', scatterTraces(), scatterLayout(), ui.CONF);
    if (O.length > 2 && !pairOnly) Plotly.react('splom-plot', splomTraces(), splomLayout(), ui.CONF);
  }
  function highlight(r) {  // only the ring changes: the other traces stay as they are (thousands of points)
    picked = r; if (!plotted) return;
    const div = el('pareto-plot'), at = div.data.findIndex(t => t.meta === PICKED), ring = pickedTrace();
    if (at >= 0) Plotly.deleteTraces(div, at);
    if (ring) Plotly.addTraces(div, ring);
  }
  return {multi: multi, columns: columns, replaces: replaces, summary: summary, draw: draw, update: update, highlight: highlight};
};
