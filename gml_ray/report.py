"""``gml-ray ctl report``: one task as one self-contained HTML page (no server, works offline).

The page holds the task's data once, as JSON, and builds everything client-side with a small inline
script and plotly's bundled JS (taken from the installed ``plotly`` package, never a CDN):

* a summary: task, status counts, best job and its config, elapsed time;
* a sortable, filterable job table (one row per job: status, one column per arg, reward, the latest
  value of each chosen scalar, duration, node); a click on a row shows the job's command, message
  and log tail;
* one curves plot per chosen scalar tag, one trace per job (up to ``max_traces``), the best job
  highlighted;
* the best reward so far over time, and a parallel-coordinates plot of args vs reward.

Large tasks stay usable: curves keep their own trace for the ``max_traces`` most interesting jobs
(best rewards, running jobs) and draw the others as their median in a 10-90% band; long curves are
thinned to ``MAX_POINTS`` points; log tails share a fixed byte budget.
"""
from __future__ import annotations

import html
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import UserError
from .store import run_time

MAX_POINTS = 1000  # points kept per curve (evenly thinned; the last point is always kept)
MAX_TRACES = 100  # jobs with a curve trace of their own; the others are drawn as a band
LOG_BUDGET = 3_000_000  # bytes of log tail in the whole report ...
LOG_MIN, LOG_MAX = 500, 8_000  # ... split between jobs, within these bounds per job
SIG_DIGITS = 7  # numbers in the embedded data keep this many significant digits ...
CURVE_DIGITS = 6  # ... curve points this many (times keep milliseconds)


@dataclass
class ReportInfo:
    """What :func:`write_report` wrote."""

    path: str
    size: int  # bytes
    jobs: int
    tags: list[str]
    seconds: float  # time to build and write the file


# ---- data --------------------------------------------------------------------------------------

def _num(value: Any, digits: int = SIG_DIGITS) -> Any:
    """A JSON-safe value: floats rounded to ``digits``, NaN/inf as None, others as JSON allows."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{digits}g}")
    if isinstance(value, (list, tuple)):
        return [_num(v, digits) for v in value]
    if isinstance(value, dict):
        return {str(k): _num(v, digits) for k, v in value.items()}
    try:  # numpy scalars and the like
        return _num(value.item(), digits)
    except (AttributeError, ValueError):
        return str(value)


def _ts(value: Any) -> float | None:
    """A timestamp (seconds) kept to the millisecond."""
    return round(float(value), 3) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _cell(value: Any) -> Any:
    """A scalar's value for a table cell: a number, or its text ('nan', 'inf', a string)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return _num(value)


def _tail(path: str, limit: int) -> str | None:
    """The last ``limit`` bytes of a file, from a line start where possible; None if absent."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return None
    if size > limit:
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:
            data = data[nl + 1:]
        return "[...]\n" + data.decode("utf-8", "replace")
    return data.decode("utf-8", "replace")


def _thin(steps: list, values: list, limit: int | None = None) -> tuple[list, list]:
    limit = limit or MAX_POINTS
    n = len(values)
    if n <= limit:
        return steps, values
    idx = sorted({int(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return [steps[i] for i in idx], [values[i] for i in idx]


def _available_tags(store: Any, task: str, jobs: list[dict]) -> list[str]:
    """Scalar tags of the task (looked up in the first and last jobs only: this is for messages)."""
    ids = [j["job_id"] for j in jobs[:20] + jobs[-20:]]
    return sorted({s["tag"] for s in store.scalars(task, ids)}) if ids else []


def collect(store: Any, task: str, tags: Iterable[str] | None = None,
            max_traces: int = MAX_TRACES, log_bytes: int | None = None,
            now: float | None = None) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict (read from ``store``; nothing written)."""
    t = store.require_task(task)
    now = time.time() if now is None else now
    jobs = store.jobs(task)
    explicit = tags is not None
    tags = list(dict.fromkeys(tags if explicit else (t["scalar_columns"] or [t["reward_attribute"]])))
    tags = [tg for tg in tags if tg]

    # scalars of the chosen tags: the last attempt of each job, numeric values for curves
    rows = store.scalars(task, None, tags) if tags and jobs else []
    last_attempt: dict[int, int] = {}
    for s in rows:
        a = s["attempt"] or 1
        if a > last_attempt.get(s["job_id"], 0):
            last_attempt[s["job_id"]] = a
    series: dict[tuple[int, str], tuple[list, list]] = {}
    latest: dict[tuple[int, str], Any] = {}
    for s in rows:
        if (s["attempt"] or 1) != last_attempt[s["job_id"]]:
            continue
        key = (s["job_id"], s["tag"])
        value = s["value"] if s["value"] is not None else s["text"]
        latest[key] = value
        steps, values = series.setdefault(key, ([], []))
        if isinstance(value, float) and math.isfinite(value):
            steps.append(s["step"] if s["step"] is not None else len(steps))
            values.append(value)
    if explicit:
        found = {tg for (_, tg) in latest}
        missing = [tg for tg in tags if tg not in found]
        if missing and jobs:
            have = _available_tags(store, task, jobs)
            raise UserError(f"task {task} has no scalar {missing[0]!r} "
                            f"(its scalars: {', '.join(have[:12]) or 'none'})")

    mode = t["optimize_mode"] or "maximize"
    rewarded = [j for j in jobs if j["reward"] is not None]
    best = (min if mode == "minimize" else max)(rewarded, key=lambda j: j["reward"]) if rewarded else None
    index = {j["job_id"]: i for i, j in enumerate(jobs)}

    # jobs that get a curve trace of their own: the best rewards first, running jobs always
    sign = 1 if mode == "minimize" else -1
    ranked = sorted(rewarded, key=lambda j: sign * j["reward"])
    own = [j["job_id"] for j in ranked[:max_traces]]
    own += [j["job_id"] for j in jobs if j["status"] == "RUNNING" and j["job_id"] not in set(own)]
    if len(jobs) <= max_traces:
        own = [j["job_id"] for j in jobs]
    own_set = set(own)

    arg_keys: list[str] = list(dict.fromkeys(k for j in jobs for k in j["arg_dict"]))
    per_job_log = log_bytes if log_bytes is not None else (
        max(LOG_MIN, min(LOG_MAX, LOG_BUDGET // max(1, len(jobs)))))

    out_jobs = []
    for j in jobs:
        logs = {}
        if per_job_log > 0 and j.get("job_dir"):
            for stream in ("stdout", "stderr"):
                text = _tail(os.path.join(j["job_dir"], f"{stream}.log"), per_job_log)
                if text:
                    logs[stream] = text
        out_jobs.append({
            "id": j["job_id"], "name": j["name"], "status": j["status"],
            "args": [_num(j["arg_dict"].get(k)) if k in j["arg_dict"] else None for k in arg_keys],
            "reward": _num(j["reward"]),
            "latest": [_cell(latest.get((j["job_id"], tg))) for tg in tags],
            "created": _ts(j.get("created")), "started": _ts(j.get("started")),
            "ended": _ts(j.get("ended")), "node": j.get("node"), "message": j.get("message"),
            "command": j.get("command"), "attempt": j.get("attempt") or 1,
            "exit_code": j.get("exit_code"), "job_dir": j.get("job_dir"), "logs": logs,
            "own_trace": j["job_id"] in own_set,
        })

    curves = {}
    for tg in tags:
        entries = []
        for j in jobs:
            pts = series.get((j["job_id"], tg))
            if not pts or not pts[1]:
                continue
            steps, values = _thin(*pts)
            plain = steps == list(range(len(steps)))
            entries.append([index[j["job_id"]], None if plain else steps, _num(values, CURVE_DIGITS)])
        curves[tg] = entries

    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    return {
        "version": 1,
        "generated": _ts(now),
        "task": {**{k: t.get(k) for k in ("name", "status", "reward_attribute", "optimize_mode",
                                          "message", "config_path", "task_dir", "host", "compare")},
                 **{k: _ts(t.get(k)) for k in ("created", "started", "ended")}},
        "elapsed": _ts(run_time(t, now)),
        "counts": counts,
        "arg_keys": arg_keys,
        "tags": tags,
        "jobs": out_jobs,
        "best": index[best["job_id"]] if best else None,
        "curves": curves,
        "log_bytes": per_job_log,
    }


# ---- page --------------------------------------------------------------------------------------

def _plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:  # pragma: no cover - plotly is a dependency
        raise UserError("the HTML report needs plotly: pip install plotly") from None
    return get_plotlyjs()


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside a <script> element (no '</script>', no '<!--')."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_html(data: dict[str, Any]) -> str:
    title = f"gml-ray report: {data['task']['name']}"
    return (PAGE.replace("%%TITLE%%", html.escape(title))
            .replace("%%CSS%%", CSS)
            .replace("%%DATA%%", _json_for_script(data))
            .replace("%%APP%%", APP_JS)
            .replace("%%PLOTLY%%", _plotly_js()))


def default_path(task: str) -> str:
    return f"{task}.report.html"


def write_report(store: Any, task: str, out: str | None = None, tags: Iterable[str] | None = None,
                 max_traces: int = MAX_TRACES, log_bytes: int | None = None) -> ReportInfo:
    """Build the report of ``task`` and write it to ``out`` (default ``<task>.report.html``)."""
    t0 = time.perf_counter()
    data = collect(store, task, tags, max_traces=max_traces, log_bytes=log_bytes)
    page = render_html(data)
    path = os.path.abspath(out or default_path(task))
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UserError(f"cannot write {out}: no directory {parent}")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return ReportInfo(path, os.path.getsize(path), len(data["jobs"]), data["tags"],
                      time.perf_counter() - t0)


CSS = r"""
:root { --fg:#1d2330; --mute:#6b7385; --line:#e3e6ec; --bg:#f6f7f9; --acc:#d62728; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { padding:16px 24px; background:#fff; border-bottom:1px solid var(--line); }
h1 { font-size:20px; margin:0 0 6px; } h2 { font-size:16px; margin:0 0 8px; }
section { background:#fff; margin:16px 24px; padding:14px 16px; border:1px solid var(--line); border-radius:6px; }
.meta { color:var(--mute); } .meta b { color:var(--fg); font-weight:600; }
.chips { margin:8px 0 4px; display:flex; flex-wrap:wrap; gap:6px; }
.chip { border:1px solid var(--line); border-radius:12px; padding:1px 10px; cursor:pointer; background:#fff; font:inherit; }
.chip:hover { border-color:#999; }
.st-FINISHED { color:#1a7f37; } .st-RUNNING { color:#0a7ea4; } .st-ERROR { color:#cf222e; }
.st-KILLED { color:#9a6700; } .st-EARLY_STOPPED { color:#8250df; } .st-PENDING { color:var(--mute); }
.best { margin-top:6px; } .best code { background:var(--bg); padding:1px 4px; border-radius:3px; }
.plots { display:grid; grid-template-columns:repeat(auto-fit, minmax(520px, 1fr)); gap:12px; }
.plot { min-height:380px; }
.note { color:var(--mute); font-size:12px; }
#filter { width:min(640px, 100%); padding:6px 8px; font:inherit; border:1px solid #c9ced8; border-radius:4px; }
#filter.bad { border-color:var(--acc); }
.tablewrap { max-height:70vh; overflow:auto; margin-top:8px; border:1px solid var(--line); }
table { border-collapse:collapse; width:100%; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { padding:3px 8px; border-bottom:1px solid var(--line); white-space:nowrap; text-align:left; }
td.n, th.n { text-align:right; }
th { position:sticky; top:0; background:#eef0f4; cursor:pointer; user-select:none; z-index:1; }
th.asc::after { content:" \25B2"; } th.desc::after { content:" \25BC"; }
tbody tr:hover { background:#f3f6fb; cursor:pointer; }
tr.is-best td:first-child::after { content:" \2605"; color:var(--acc); }
tr.sel { background:#fff4d6 !important; }
#detail pre { background:#0f1419; color:#d6dde6; padding:8px; max-height:320px; overflow:auto; font-size:12px; white-space:pre-wrap; word-break:break-all; }
#detail dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:0 0 8px; }
#detail dt { color:var(--mute); } #detail dd { margin:0; word-break:break-all; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%%TITLE%%</title>
<style>%%CSS%%</style>
</head><body>
<header id="summary"></header>
<section id="jobs-section"><h2>Jobs</h2>
<input id="filter" type="search" spellcheck="false" autocomplete="off"
 placeholder="filter: text, or column=value, e.g. status=FINISHED reward>0.9 lr<=0.01">
<span id="shown" class="note"></span>
<div class="tablewrap"><table id="jobs"><thead></thead><tbody></tbody></table></div>
<div id="detail"></div>
</section>
<section id="curves-section"><h2>Scalar curves</h2><div id="curves-note" class="note"></div><div id="curves" class="plots"></div></section>
<section id="progress-section"><div class="plots"><div id="best-plot" class="plot"></div><div id="parcoords" class="plot"></div></div></section>
<script type="application/json" id="gml-data">%%DATA%%</script>
<script>%%PLOTLY%%</script>
<script>%%APP%%</script>
</body></html>
"""

APP_JS = r"""
(function () {
'use strict';
const TM = {start: performance.now()};
const D = JSON.parse(document.getElementById('gml-data').textContent);
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

// ---- summary ----
(function summary() {
  const order = ['FINISHED', 'RUNNING', 'PENDING', 'ERROR', 'KILLED', 'EARLY_STOPPED'];
  const keys = Object.keys(D.counts).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  let h = '<h1>' + esc(T.name) + ' <span class="st-' + esc(T.status) + '">' + esc(T.status) + '</span></h1>';
  h += '<div class="meta">reward <b>' + esc(MIN ? 'minimize' : 'maximize') + ' ' + esc(T.reward_attribute) + '</b>'
    + (T.compare ? ' &middot; compare <b>' + esc(T.compare) + '</b>' : '')
    + ' &middot; <b>' + J.length + '</b> jobs &middot; elapsed <b>' + dur(D.elapsed) + '</b>'
    + ' &middot; started ' + esc(when(T.started || T.created)) + (T.ended ? ' &middot; ended ' + esc(when(T.ended)) : '')
    + ' &middot; ' + (T.status === 'RUNNING' ? 'snapshot' : 'report') + ' at ' + esc(when(D.generated)) + '</div>';
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
D.arg_keys.forEach((k, i) => cols.push({label: k, get: j => j.args[i], num: J.every(j => j.args[i] === null || typeof j.args[i] === 'number')}));
cols.push({label: 'reward', get: j => j.reward, num: true});
D.tags.forEach((t, i) => { if (t !== T.reward_attribute) cols.push({label: t, get: j => j.latest[i], num: true}); });
cols.push({label: 'duration', get: duration, num: true, show: dur});
cols.push({label: 'node', get: j => j.node, num: false});
if (J.some(j => j.message && j.status !== 'FINISHED')) cols.push({label: 'note', get: j => j.status !== 'FINISHED' ? j.message : null, num: false});
const tbody = document.querySelector('#jobs tbody');
document.querySelector('#jobs thead').innerHTML = '<tr>' + cols.map((c, i) => '<th data-col="' + i + '"' + (c.num ? ' class="n"' : '') + '>' + esc(c.label) + '</th>').join('') + '</tr>';
tbody.innerHTML = J.map((j, r) => '<tr data-row="' + r + '"' + (r === D.best ? ' class="is-best"' : '') + '>' + cols.map(c => {
  const v = c.get(j), txt = c.show ? c.show(v) : fmt(v);
  return '<td' + (c.num ? ' class="n"' : (c.label === 'status' ? ' class="st-' + esc(v) + '"' : '')) + '>' + esc(txt) + '</td>'; }).join('') + '</tr>').join('');
const rowEls = Array.from(tbody.rows);
TM.table = performance.now();
const rowText = J.map((j, r) => rowEls[r].textContent.toLowerCase() + ' ' + argText(j).toLowerCase());
let sortCol = -1, sortDir = 1;
function cmp(a, b) {
  if (a === b) return 0; if (a === null || a === undefined) return 1; if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return (a - b) * sortDir;
  return String(a).localeCompare(String(b), undefined, {numeric: true}) * sortDir;
}
function sortBy(ci, dir) {
  sortCol = ci; sortDir = dir; const c = cols[ci];
  const vals = J.map(c.get), order = J.map((_, i) => i).sort((x, y) => cmp(vals[x], vals[y]) || x - y);
  const frag = document.createDocumentFragment(); order.forEach(i => frag.appendChild(rowEls[i])); tbody.appendChild(frag);
  document.querySelectorAll('#jobs th').forEach((th, i) => th.className = (cols[i].num ? 'n ' : '') + (i === ci ? (dir > 0 ? 'asc' : 'desc') : ''));
}
document.querySelector('#jobs thead').addEventListener('click', e => {
  const th = e.target.closest('th'); if (!th) return; const ci = +th.dataset.col;
  sortBy(ci, ci === sortCol ? -sortDir : (cols[ci].label === 'reward' ? (MIN ? 1 : -1) : 1)); });

// filter: every term must match; "col op value" compares a column, anything else is a substring
const OPS = /^(.+?)(>=|<=|!=|=|>|<|~)(.*)$/;
let shown = J.map(() => true);
function parseFilter(text) {
  return text.trim().split(/\s+/).filter(Boolean).map(term => {
    const m = term.match(OPS);
    if (m) { const ci = cols.findIndex(c => c.label.toLowerCase() === m[1].toLowerCase());
      if (ci >= 0) return {ci: ci, op: m[2], raw: m[3].toLowerCase(), num: m[3] !== '' && !isNaN(Number(m[3])) ? Number(m[3]) : null}; }
    return {text: term.toLowerCase()}; });
}
function match(t, j, r) {
  if (t.text !== undefined) return rowText[r].includes(t.text);
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
  let n = 0; shown.forEach((s, r) => { rowEls[r].hidden = !s; if (s) n++; });
  document.getElementById('shown').textContent = n + ' of ' + J.length + ' jobs';
  updatePlots();
}
let filterTimer = null;
document.getElementById('filter').addEventListener('input', () => { clearTimeout(filterTimer); filterTimer = setTimeout(applyFilter, 150); });

// ---- job detail (row click) ----
let selected = null;
tbody.addEventListener('click', e => { const tr = e.target.closest('tr'); if (tr) selectJob(+tr.dataset.row); });
function selectJob(r) {
  if (selected !== null) rowEls[selected].classList.remove('sel');
  selected = r; rowEls[r].classList.add('sel'); const j = J[r];
  const items = [['status', j.status + (j.exit_code !== null && j.exit_code !== undefined ? ' (exit ' + j.exit_code + ')' : '')],
    ['args', argText(j)], ['reward', fmt(j.reward)], ['attempt', j.attempt], ['started', when(j.started)],
    ['ended', when(j.ended)], ['duration', dur(duration(j))], ['node', j.node || '-'], ['command', j.command || '-'],
    ['job dir', j.job_dir || '-']];
  if (j.message) items.push(['message', j.message]);
  let h = '<h2>' + esc(j.name) + '</h2><dl>' + items.map(([k, v]) => '<dt>' + esc(k) + '</dt><dd>' + esc(v) + '</dd>').join('') + '</dl>';
  ['stdout', 'stderr'].forEach(s => { if (j.logs[s]) h += '<div class="note">' + s + '.log (tail)</div><pre class="log">' + esc(j.logs[s]) + '</pre>'; });
  if (!j.logs.stdout && !j.logs.stderr) h += '<div class="note">no log (generate_log off, or the job wrote nothing)</div>';
  const el = document.getElementById('detail'); el.innerHTML = h;
  highlight(r);
}

// ---- curves: one plot per tag, one trace per job (the rest in one grey trace) ----
const curvePlots = [];
const COLORWAY = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];  // no red: red is the best job
const BAND = -1;  // meta of the traces that summarise the jobs without a curve of their own
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
  keys.forEach(k => { const a = by.get(k).sort((u, v) => u - v); out.lo.push(q(a, 0.1)); out.mid.push(q(a, 0.5)); out.hi.push(q(a, 0.9)); });
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
D.tags.forEach((tag, ti) => {
  const entries = D.curves[tag] || [];
  const div = document.createElement('div'); div.className = 'plot curve-plot'; div.id = 'curve-' + ti; div.dataset.tag = tag;
  document.getElementById('curves').appendChild(div);
  const own = entries.filter(e => J[e[0]].own_trace && e[0] !== D.best), rest = entries.filter(e => !J[e[0]].own_trace && e[0] !== D.best);
  const bestE = entries.filter(e => e[0] === D.best);
  const many = own.length > 12;
  const traces = own.map(e => ({type: 'scatter', mode: e[2].length > 1 ? 'lines' : 'markers', x: stepsOf(e), y: e[2], name: J[e[0]].name,
    line: {width: 1.2}, opacity: many ? 0.55 : 0.9, showlegend: !many, meta: e[0],
    hovertemplate: hoverOf(J[e[0]]) + '<br>step %{x}: %{y}<extra></extra>'}));
  if (rest.length) traces.unshift(...bandTraces(bandXY(rest)));
  bestE.forEach(e => traces.push({type: 'scatter', mode: e[2].length > 1 ? 'lines+markers' : 'markers', x: stepsOf(e), y: e[2],
    name: J[e[0]].name + ' (best)', line: {width: 3.5, color: '#d62728'}, marker: {size: 5, color: '#d62728'}, showlegend: true, meta: e[0],
    hovertemplate: '<b>best</b> ' + hoverOf(J[e[0]]) + '<br>step %{x}: %{y}<extra></extra>'}));
  const layout = {title: {text: esc(tag), font: {size: 14}}, margin: {l: 55, r: 15, t: 40, b: 40}, hovermode: 'closest', colorway: COLORWAY,
    xaxis: {title: {text: 'step'}}, yaxis: {title: {text: esc(tag)}}, legend: {font: {size: 10}}, uirevision: 'keep'};
  if (!entries.length) layout.annotations = [{text: 'no values of ' + esc(tag) + ' yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}];
  curvePlots.push({div: div, traces: traces, layout: layout, rest: rest});
});
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
    // a job drawn in the grey trace gets a temporary trace of its own
    const tmp = p.div.data.findIndex(tr => tr.meta === -2); if (tmp >= 0) Plotly.deleteTraces(p.div, tmp);
    const e = p.rest.find(x => x[0] === r);
    if (e) Plotly.addTraces(p.div, {type: 'scatter', mode: 'lines', x: stepsOf(e), y: e[2], name: J[r].name, meta: -2, line: {width: 3, color: '#1f77b4'},
      hovertemplate: hoverOf(J[r]) + '<br>step %{x}: %{y}<extra></extra>'});
  });
}

// ---- best reward so far, over time ----
function bestPlot() {
  const done = J.map((j, r) => ({r: r, t: j.ended || (j.reward !== null ? D.generated : null), v: j.reward}))
    .filter(p => p.v !== null && p.t !== null).sort((a, b) => a.t - b.t);
  let cur = null; const bx = [], by = [];
  done.forEach(p => { if (cur === null || (MIN ? p.v < cur : p.v > cur)) cur = p.v; bx.push(when(p.t)); by.push(cur); });
  if (bx.length && T.status === 'RUNNING') { bx.push(when(D.generated)); by.push(cur); }
  const traces = [{type: 'scatter', mode: 'markers', name: 'job reward', x: done.map(p => when(p.t)), y: done.map(p => p.v),
      marker: {size: 5, color: 'rgba(31,119,180,0.5)'}, text: done.map(p => J[p.r].name), hovertemplate: '%{text}: %{y}<extra></extra>'},
    {type: 'scatter', mode: 'lines', name: 'best so far', x: bx, y: by, line: {shape: 'hv', width: 2.5, color: '#d62728'}, hovertemplate: 'best %{y}<extra></extra>'}];
  const layout = {title: {text: 'best ' + esc(T.reward_attribute) + ' so far', font: {size: 14}}, margin: {l: 55, r: 15, t: 40, b: 40},
    xaxis: {type: 'date', title: {text: 'time'}}, yaxis: {title: {text: esc(T.reward_attribute)}}, legend: {orientation: 'h', y: -0.2}};
  if (!done.length) layout.annotations = [{text: 'no rewards yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}];
  return Plotly.newPlot('best-plot', traces, layout, CONF);
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
function parcoordsFig() {
  const rows = J.map((j, r) => r).filter(r => J[r].reward !== null && shown[r]);
  const layout = {title: {text: 'args vs ' + esc(T.reward_attribute) + ' (' + rows.length + ' jobs)', font: {size: 14}}, margin: {l: 70, r: 60, t: 80, b: 30}};
  if (!rows.length) return {data: [], layout: Object.assign(layout, {xaxis: {visible: false}, yaxis: {visible: false},
    annotations: [{text: 'no rewards yet', showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5}]})};
  return {data: [{type: 'parcoords', dimensions: dims(rows), line: {color: rows.map(r => J[r].reward), colorscale: 'Viridis', reversescale: MIN, showscale: true,
    colorbar: {title: {text: esc(T.reward_attribute)}, thickness: 12}}}], layout: layout};
}

function updatePlots() {
  curvePlots.forEach(p => {
    if (!p.div.data) return;
    const vis = p.div.data.map(tr => tr.meta < 0 ? true : shown[tr.meta]);
    const bi = p.div.data.map((tr, i) => tr.meta === BAND ? i : -1).filter(i => i >= 0);
    if (bi.length === 3) {  // the band follows the filter too
      const b = bandXY(p.rest), t = bandTraces(b);
      Plotly.restyle(p.div, {x: [b.x, b.x, b.x], y: [b.lo, b.hi, b.mid], name: t.map(x => x.name), visible: [true, true, true]}, bi);
    }
    Plotly.restyle(p.div, {visible: vis});
  });
  const f = parcoordsFig(); Plotly.react('parcoords', f.data, f.layout, CONF);
}

// ---- draw, then tell whoever waits (tests, benchmarks) that the page is ready ----
window.gmlReport = {data: D, ready: false, errors: [], select: selectJob,
  filter: text => { document.getElementById('filter').value = text; applyFilter(); return shown.filter(Boolean).length; },
  sort: (label, dir) => sortBy(cols.findIndex(c => c.label === label), dir || 1)};
window.gmlReport.timings = TM;
document.getElementById('shown').textContent = J.length + ' of ' + J.length + ' jobs';
const ri = cols.findIndex(c => c.label === 'reward');
if (J.some(j => j.reward !== null)) sortBy(ri, MIN ? 1 : -1);
TM.sorted = performance.now();
// the plots are drawn one at a time, each after the page has had a chance to paint and respond
const tick = () => new Promise(ok => setTimeout(ok, 0));
(async () => {
  for (const p of curvePlots) { await tick(); await Plotly.newPlot(p.div, p.traces, p.layout, CONF); }
  TM.curves = performance.now();
  await tick(); await bestPlot();
  TM.best = performance.now();
  await tick(); const pc = parcoordsFig(); await Plotly.newPlot('parcoords', pc.data, pc.layout, CONF);
  TM.parcoords = performance.now();
  if (selected !== null) highlight(selected);
  window.gmlReport.ready = true; window.gmlReport.readyMs = performance.now();
})().catch(err => { window.gmlReport.errors.push(String(err && err.stack || err)); console.error(err); });
})();
"""
