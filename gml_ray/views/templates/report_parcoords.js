// A parallel-coordinates plot on one 2D canvas: one polyline per job across the arg axes and the
// reward axis, coloured by reward (viridis), with a range brush on every axis.
// Why not plotly's parcoords: it draws through WebGL, which without a GPU (headless Chromium,
// remote desktops) costs seconds even for 1,000 lines; a 2D canvas draws 10,000 lines in tens of ms.
// gmlParcoords(el, fig) draws fig = {title, dims: [{label, values, tickvals?, ticktext?, range?}],
// color: [...], reverse, colorLabel} into el and returns {lines, brushed(), brush(d, lo, hi), draw}.
window.gmlParcoords = function (el, fig) {
  'use strict';
  const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
  const M = {l: 70, r: 90, t: 70, b: 30}, H = 380, BUCKETS = 48;
  const n = fig.color.length, dims = fig.dims;
  el.innerHTML = '';
  const canvas = document.createElement('canvas');
  canvas.className = 'pc-canvas'; el.appendChild(canvas);
  const ctx = canvas.getContext('2d');
  const brush = dims.map(() => null);  // [lo, hi] in data units, or null
  const span = vals => { let lo = Infinity, hi = -Infinity;
    for (const v of vals) if (v !== null && v !== undefined && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (lo === Infinity) return [0, 1]; if (lo === hi) return [lo - 1, hi + 1]; return [lo, hi]; };
  const ranges = dims.map(d => d.range || span(d.values));
  const [clo, chi] = span(fig.color);
  // one colour bucket per line, so the canvas strokes BUCKETS paths instead of n
  const bucket = fig.color.map(c => { let f = (c - clo) / (chi - clo || 1); if (fig.reverse) f = 1 - f;
    return Math.max(0, Math.min(BUCKETS - 1, Math.floor(f * BUCKETS))); });
  const colorAt = f => { const x = Math.max(0, Math.min(1, f)) * (VIRIDIS.length - 1), i = Math.floor(x), t = x - i;
    const c = k => parseInt(VIRIDIS[Math.min(VIRIDIS.length - 1, k)].slice(1), 16);
    const a = c(i), b = c(i + 1), ch = s => Math.round(((a >> s) & 255) * (1 - t) + ((b >> s) & 255) * t);
    return 'rgb(' + ch(16) + ',' + ch(8) + ',' + ch(0) + ')'; };
  let W = 0, ax = [];
  const yOf = (d, v) => { const [lo, hi] = ranges[d]; return M.t + (1 - (v - lo) / (hi - lo)) * (H - M.t - M.b); };
  const vOf = (d, y) => { const [lo, hi] = ranges[d]; return lo + (1 - (y - M.t) / (H - M.t - M.b)) * (hi - lo); };
  const inside = i => brush.every((b, d) => !b || (dims[d].values[i] >= b[0] && dims[d].values[i] <= b[1]));
  function ticks(d) {
    const dm = dims[d];
    if (dm.tickvals) return dm.tickvals.map((v, k) => [v, dm.ticktext ? dm.ticktext[k] : String(v)]);
    const [lo, hi] = ranges[d], step0 = (hi - lo) / 5, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
    const out = []; for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push([v, String(Number(v.toPrecision(6)))]);
    return out;
  }
  function draw() {
    W = el.clientWidth || 600;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr; canvas.height = H * dpr; canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, W, H);
    const gap = dims.length > 1 ? (W - M.l - M.r) / (dims.length - 1) : 0;
    ax = dims.map((_, d) => M.l + d * gap);
    ctx.font = '14px system-ui, sans-serif'; ctx.fillStyle = '#1d2330'; ctx.textAlign = 'center';
    const kept = []; for (let i = 0; i < n; i++) if (inside(i)) kept.push(i);
    const active = brush.some(Boolean);
    ctx.fillText(fig.title + (active ? ' - ' + kept.length + ' in the brushed ranges' : ''), W / 2, 22);
    const path = (i) => { for (let d = 0; d < dims.length; d++) { const v = dims[d].values[i];
      const y = v === null || v === undefined || !isFinite(v) ? H - M.b + 6 : yOf(d, v);
      if (d) ctx.lineTo(ax[d], y); else ctx.moveTo(ax[d], y); } };
    ctx.lineWidth = 1;
    if (active) {  // lines outside the brushes: faint grey, under the others
      ctx.strokeStyle = 'rgba(120,120,130,0.12)'; ctx.beginPath();
      for (let i = 0; i < n; i++) if (!inside(i)) path(i);
      ctx.stroke();
    }
    const byBucket = Array.from({length: BUCKETS}, () => []);
    kept.forEach(i => byBucket[bucket[i]].push(i));
    ctx.globalAlpha = n > 2000 ? 0.35 : (n > 200 ? 0.6 : 0.9);
    byBucket.forEach((rows, b) => { if (!rows.length) return;  // better rewards last, on top
      ctx.strokeStyle = colorAt((b + 0.5) / BUCKETS); ctx.beginPath(); rows.forEach(path); ctx.stroke(); });
    ctx.globalAlpha = 1;
    ctx.font = '11px system-ui, sans-serif';
    dims.forEach((dm, d) => {
      ctx.strokeStyle = '#333'; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(ax[d], M.t); ctx.lineTo(ax[d], H - M.b); ctx.stroke();
      ctx.fillStyle = '#1d2330'; ctx.textAlign = 'center'; ctx.font = '12px system-ui, sans-serif';
      ctx.fillText(dm.label, ax[d], M.t - 18);
      ctx.font = '11px system-ui, sans-serif'; ctx.textAlign = 'right';
      ticks(d).forEach(([v, txt]) => { if (!txt) return; const y = yOf(d, v); if (y < M.t - 1 || y > H - M.b + 1) return;
        ctx.fillRect(ax[d] - 4, y, 4, 1); ctx.fillText(txt, ax[d] - 6, y + 4); });
      const b = brush[d];
      if (b) { const y0 = yOf(d, b[1]), y1 = yOf(d, b[0]); ctx.fillStyle = 'rgba(214,39,40,0.18)'; ctx.fillRect(ax[d] - 7, y0, 14, y1 - y0);
        ctx.strokeStyle = '#d62728'; ctx.strokeRect(ax[d] - 7, y0, 14, y1 - y0); }
    });
    const cx = W - M.r + 40, g = ctx.createLinearGradient(0, H - M.b, 0, M.t);  // the colour bar
    VIRIDIS.forEach((c, k) => g.addColorStop(fig.reverse ? 1 - k / (VIRIDIS.length - 1) : k / (VIRIDIS.length - 1), c));
    ctx.fillStyle = g; ctx.fillRect(cx, M.t, 12, H - M.t - M.b);
    ctx.fillStyle = '#1d2330'; ctx.textAlign = 'left';
    ctx.fillText(String(Number(chi.toPrecision(4))), cx + 15, M.t + 8); ctx.fillText(String(Number(clo.toPrecision(4))), cx + 15, H - M.b);
    ctx.textAlign = 'center'; ctx.fillText(fig.colorLabel, cx + 6, M.t - 18);
  }
  // brushing: drag along an axis to keep the lines through that range; a click on the axis clears it
  let drag = null, frame = 0;
  const redraw = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); };  // once a frame while dragging
  const pos = e => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  canvas.addEventListener('mousedown', e => { const [x, y] = pos(e); const d = ax.findIndex(a => Math.abs(a - x) <= 12);
    if (d < 0 || y < M.t - 4 || y > H - M.b + 4) return; drag = {d: d, y0: y, moved: false}; e.preventDefault(); });
  window.addEventListener('mousemove', e => { if (!drag) return; const y = Math.max(M.t, Math.min(H - M.b, pos(e)[1]));
    if (Math.abs(y - drag.y0) < 3 && !drag.moved) return; drag.moved = true;
    const a = vOf(drag.d, drag.y0), b = vOf(drag.d, y); brush[drag.d] = [Math.min(a, b), Math.max(a, b)]; redraw(); });
  window.addEventListener('mouseup', () => { if (drag && !drag.moved) { brush[drag.d] = null; draw(); } drag = null; });
  draw();
  return {lines: n, draw: draw, brushed: () => { let k = 0; for (let i = 0; i < n; i++) if (inside(i)) k++; return k; },
    brush: (d, lo, hi) => { brush[d] = lo === null || lo === undefined ? null : [lo, hi]; draw(); }};
};
