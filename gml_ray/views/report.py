"""``gml-ray ctl report``: one task as one self-contained HTML page (no server, works offline).

The page holds the task's data once, as JSON, and builds everything client-side with a small inline
script and plotly's bundled JS (taken from the installed ``plotly`` package, never a CDN); both come
gzip-compressed, inflated by the browser (DecompressionStream: Chrome 80, Firefox 113, Safari 16.4):

* a summary: task, status counts, best job and its config, elapsed time;
* a sortable, filterable job table (one row per job: status, one column per arg, reward, the latest
  value of each chosen scalar, duration, node); a click on a row shows the job's command, message
  and log tail;
* one curves plot per chosen scalar tag, one trace per job (up to ``max_traces``), the best job
  highlighted;
* the best reward so far over time, and a parallel-coordinates plot of args vs reward (drawn on a
  2D canvas by ``templates/report_parcoords.js``, a range brush on each axis).

A task with several objectives or constraints (:mod:`gml_ray.views.report_objectives`) also gets
a column per objective, the Pareto front's mark and each constraint's violation in the table, the
front's size and hypervolume in the summary, objective vs objective scatter plots with the front
and the infeasible jobs marked, and the hypervolume over time (``templates/report_objectives.js``).

Large tasks stay usable (benchmarks/report_scale.py measures a 10,000-job page): the table draws
only the rows in view; the table is painted before plotly.js is evaluated;
curves keep their own line for the ``max_traces`` most interesting jobs (best rewards, running
jobs; past a dozen they share one trace per colour) and draw the others as their median in a
10-90% band; long curves are thinned to ``MAX_POINTS`` points that keep their extremes; log tails
share a fixed byte budget.
"""
from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import math
import os
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable

from gml_ray.errors import UserError
from gml_ray.optimize import best_result, has_result, sign
from gml_ray.store.schema import run_time
from gml_ray.views.report_objectives import objective_data
from gml_ray.vocab import JobStatus, OptimizeMode

MAX_POINTS = 400  # points kept per curve (each slice's min and max; the first and last always)
MAX_TRACES = 100  # jobs with a curve trace of their own; the others are drawn as a band
LOG_BUDGET = 3_000_000  # bytes of log tail in the whole report ...
LOG_MIN, LOG_MAX = 500, 8_000  # ... split between jobs, within these bounds per job
SIG_DIGITS = 7  # numbers in the embedded data keep this many significant digits ...
CURVE_DIGITS = 6  # ... curve points of the jobs drawn on their own this many (times keep ms) ...
BAND_DIGITS = 4  # ... and those only drawn in the band this many: a third of the page at 10k jobs


@dataclass
class ReportInfo:
    """What :func:`write_report` wrote."""

    path: str
    size: int  # bytes
    jobs: int
    tags: list[str]
    seconds: float  # time to build and write the file


# ---- data --------------------------------------------------------------------------------------

def num(value: Any, digits: int = SIG_DIGITS) -> Any:
    """A JSON-safe value: floats rounded to ``digits``, NaN/inf as None, others as JSON allows."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{digits}g}")
    if isinstance(value, (list, tuple)):
        return [num(v, digits) for v in value]
    if isinstance(value, dict):
        return {str(k): num(v, digits) for k, v in value.items()}
    try:  # numpy scalars and the like
        return num(value.item(), digits)
    except (AttributeError, ValueError):
        return str(value)


def ts(value: Any) -> float | None:
    """A timestamp (seconds) kept to the millisecond."""
    return round(float(value), 3) if isinstance(value, (int, float)) and math.isfinite(value) else None


def cell(value: Any) -> Any:
    """A scalar's value for a table cell: a number, or its text ('nan', 'inf', a string)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return num(value)


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


def thin_curve(steps: list, values: list, limit: int | None = None) -> tuple[list, list]:
    """At most ``limit`` points of a curve (``MAX_POINTS`` by default), in step order: the first
    and the last, and in each of ``(limit - 2) // 2`` equal slices between them the lowest and the
    highest value. Spikes and dips survive, which an even thinning would drop; at a few hundred
    points the line looks as the full one does at a plot's width."""
    limit = max(4, limit or MAX_POINTS)
    n = len(values)
    if n <= limit:
        return steps, values
    buckets, inner = (limit - 2) // 2, n - 2
    idx = [0]
    for b in range(buckets):
        lo, hi = 1 + b * inner // buckets, 1 + (b + 1) * inner // buckets
        if lo < hi:
            seg = range(lo, hi)
            idx.extend(sorted({min(seg, key=values.__getitem__), max(seg, key=values.__getitem__)}))
    idx.append(n - 1)
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
    wanted: Iterable[str] = tags if tags is not None else (t["scalar_columns"] or [t["reward_attribute"]])
    tags = list(dict.fromkeys(wanted))
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

    mode = t["optimize_mode"] or OptimizeMode.MAXIMIZE
    rewarded = [j for j in jobs if has_result(j)]
    best = best_result(rewarded, mode)
    index = {j["job_id"]: i for i, j in enumerate(jobs)}

    # jobs that get a curve trace of their own: the best rewards first, running jobs always
    ranked = sorted(rewarded, key=lambda j: -sign(mode) * j["reward"])
    own = [j["job_id"] for j in ranked[:max_traces]]
    own += [j["job_id"] for j in jobs if j["status"] == JobStatus.RUNNING and j["job_id"] not in set(own)]
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
            "args": [num(j["arg_dict"].get(k)) if k in j["arg_dict"] else None for k in arg_keys],
            "reward": num(j["reward"]),
            "latest": [cell(latest.get((j["job_id"], tg))) for tg in tags],
            "created": ts(j.get("created")), "started": ts(j.get("started")),
            "ended": ts(j.get("ended")), "node": j.get("node"), "message": j.get("message"),
            "command": j.get("command"), "attempt": j.get("attempt") or 1,
            "exit_code": j.get("exit_code"), "job_dir": j.get("job_dir"), "logs": logs,
            "own_trace": j["job_id"] in own_set,
            # PBT: the job whose checkpoint this one continued, and that checkpoint's step
            "parent": index.get(j["parent_id"]) if j.get("parent_id") is not None else None,
            "parent_step": j.get("parent_step"),
        })

    curves = {}
    for tg in tags:
        entries = []
        for j in jobs:
            pts = series.get((j["job_id"], tg))
            if not pts or not pts[1]:
                continue
            steps, values = thin_curve(*pts)
            plain = steps == list(range(len(steps)))
            digits = CURVE_DIGITS if j["job_id"] in own_set else BAND_DIGITS
            entries.append([index[j["job_id"]], None if plain else steps, num(values, digits)])
        curves[tg] = entries

    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    data: dict[str, Any] = {
        "version": 1,
        "generated": ts(now),
        "task": {**{k: t.get(k) for k in ("name", "status", "reward_attribute", "optimize_mode",
                                          "message", "config_path", "task_dir", "host", "compare")},
                 **{k: ts(t.get(k)) for k in ("created", "started", "ended")}},
        "elapsed": ts(run_time(t, now)),
        "counts": counts,
        "arg_keys": arg_keys,
        "tags": tags,
        "jobs": out_jobs,
        "best": index[best["job_id"]] if best else None,
        "curves": curves,
        "log_bytes": per_job_log,
    }
    extra = objective_data(t, jobs, now)  # None for a plain task: its page is as it was
    if extra is not None:
        for out, more in zip(out_jobs, extra.jobs):
            out.update(num(more))
        data.update(num(extra.summary))
        data["hypervolume"] = [[ts(at), num(volume), r] for at, volume, r in extra.series]
    return data


# ---- page --------------------------------------------------------------------------------------

def _pack(text: str, level: int) -> str:
    """``text`` gzip-compressed, as base64: safe inside any <script> element (no '<', no '&').

    The page inflates it with the browser's native DecompressionStream. Why: a browser tokenizes
    every byte of a page before a script after them runs; 23 MB of JSON and plotly.js took
    ~0.7 s of that for a 10,000-job report, their gzip a third of it.
    """
    return base64.b64encode(gzip.compress(text.encode("utf-8"), level, mtime=0)).decode("ascii")


def _json(data: Any) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=1)
def _plotly_packed() -> str:
    """plotly's bundled JS, packed (the same for every report: compressed once per process)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:  # pragma: no cover - plotly is a dependency
        raise UserError("the HTML report needs plotly: pip install plotly") from None
    return _pack(get_plotlyjs(), 6)


def _template(name: str) -> str:
    """A file of the page, shipped as package data in ``gml_ray/views/templates``."""
    return resources.files("gml_ray.views").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def render_html(data: dict[str, Any]) -> str:
    """The page: ``templates/report.html`` with its style, scripts, the data and plotly inlined.

    The data (JSON; the curves and the log tails apart) and plotly.js go in packed (see
    :func:`_pack`); plotly.js is evaluated once the page has painted its table: evaluating it takes
    a second or more, and the table needs none of it.
    """
    title = f"gml-ray report: {data['task']['name']}"
    # What the table needs apart from the rest, so that the page reads only that before showing it:
    # the curves (half of a 10,000-job page) are inflated while plotly.js compiles, the log tails
    # (a list by job index, a quarter of it) on the first row click or once the plots are drawn.
    logs = [j.get("logs") or {} for j in data["jobs"]]
    core = {**{k: v for k, v in data.items() if k != "curves"},
            "jobs": [{k: v for k, v in j.items() if k != "logs"} for j in data["jobs"]]}
    parts = {"%%TITLE%%": html.escape(title), "%%CSS%%": _template("report.css"),
             "%%DATA%%": _pack(_json(core), 3), "%%CURVES%%": _pack(_json(data["curves"]), 3),
             "%%LOGS%%": _pack(_json(logs), 3), "%%APP%%": _template("report.js"),
             "%%PARCOORDS%%": _template("report_parcoords.js"),
             "%%OBJECTIVES%%": _template("report_objectives.js"), "%%PLOTLY%%": _plotly_packed()}
    # One pass over the page: a value is never searched for another part's marker.
    return re.sub("|".join(re.escape(k) for k in parts), lambda m: parts[m.group(0)], _template("report.html"))


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
