"""A job as an MLflow run: the one mapping from store rows to what MLflow holds (the ``mlflow`` extra).

A task is a parent run, each ended job a child run; this module says what each run holds (its
name, tags, params, metrics and status: :func:`job_record`, :func:`identity_tags`), how keys and
values fit MLflow's rules (:func:`mlflow_key`, :func:`flatten_params`), how a run is known
complete (:func:`job_fingerprint`), and how a run's data splits into ``log_batch`` calls within
MLflow's limits (:func:`batches`). It talks to no tracking server: :mod:`gml_ray.views.mlflow_export`
does, from these records.
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from gml_ray.objectives import OutcomeSpec
from gml_ray.vocab import ACTIVE_JOB_STATUSES, JobStatus, TaskStatus

# Identity tags: how a run is found again (export-mlflow, --resume, a logger that retries).
TAG_TASK, TAG_CREATED, TAG_KIND, TAG_JOB_ID = "gml.task", "gml.task_created", "gml.kind", "gml.job_id"
TAG_LOGGED = "gml.logged"  # a child run's fingerprint; the run counts once it has ended (its last request)
TAG_PARENT, TAG_RUN_NAME = "mlflow.parentRunId", "mlflow.runName"

# MLflow's limits (mlflow.utils.validation): per log_batch call, and per key and value.
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE = 250, 6000, 8000

# A job's end as an MLflow run status; the gml status itself is the tag gml.status.
RUN_STATUS: dict[str, str] = {JobStatus.FINISHED: "FINISHED", JobStatus.ERROR: "FAILED",
                              JobStatus.KILLED: "KILLED", JobStatus.EARLY_STOPPED: "KILLED",
                              JobStatus.PAUSED: "KILLED"}
TASK_RUN_STATUS: dict[str, str] = {TaskStatus.FINISHED: "FINISHED", TaskStatus.ERROR: "FAILED",
                                   TaskStatus.KILLED: "KILLED", TaskStatus.RUNNING: "RUNNING"}

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def mlflow_key(name: Any) -> str:
    """A metric, param or tag key MLflow accepts: characters outside ``[/\\w.\\- :]`` become ``_``,
    and a key that would read as another path (``a//b``, ``./a``, ``/a``) loses its slashes."""
    key = _BAD_KEY_CHARS.sub("_", str(name))[:MAX_KEY] or "_"
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        key = key.replace("/", "_")
        if key.strip(".") == "":
            key = key.replace(".", "_")
    return key


def clipped_text(value: Any, limit: int) -> str:
    """``value`` as text (JSON unless a string), cut to ``limit`` characters with ``...``."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def flatten_params(arg_dict: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A job's args as MLflow params: nested mappings flattened with dotted keys (``opt.lr``),
    values as text (lists and other values as JSON), each cut to MLflow's 6000 characters."""
    out: dict[str, str] = {}
    for key, value in arg_dict.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, name + "."))
        else:
            plain = isinstance(value, (int, float, bool)) or value is None  # as Python prints them
            out[mlflow_key(name)] = clipped_text(str(value) if plain else value, MAX_PARAM_VALUE)
    return out


_STEP_MAX = (1 << 63) - 1


def _step(step: Any) -> int | None:
    """A stored step as the int64 MLflow takes, or None (no step, text, out of range)."""
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, int) and not isinstance(step, bool) and -_STEP_MAX - 1 <= step <= _STEP_MAX:
        return step
    return None


def millis(seconds: Any) -> int | None:
    """A store time (seconds) as MLflow's milliseconds; None for none."""
    return int(seconds * 1000) if isinstance(seconds, (int, float)) and seconds else None


def job_fingerprint(job: Mapping[str, Any]) -> str:
    """What makes a logged child run current: the job's attempt, status and end. A job that ran
    again (``--resume``) or changed status (a paused job retired) has another."""
    return f"{int(job.get('attempt') or 1)}:{job['status']}:{job.get('ended')!r}"


def loggable(job: Mapping[str, Any]) -> bool:
    """Whether a job has ended (anything but PENDING and RUNNING): only ended jobs are logged."""
    return job["status"] not in ACTIVE_JOB_STATUSES


@dataclass
class RunRecord:
    """One job as an MLflow run: what :meth:`MlflowSink.log_job` sends."""

    job_id: int
    name: str
    status: str  # the MLflow run status
    start_ms: int | None
    end_ms: int | None
    fingerprint: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, ms, step
    tags: dict[str, str] = field(default_factory=dict)


def identity_tags(task_row: Mapping[str, Any]) -> dict[str, str]:
    """The tags that name a task in MLflow: its name and creation time (a task made again
    under the same name after ``ctl rm`` is another task)."""
    return {TAG_TASK: str(task_row["name"]), TAG_CREATED: repr(float(task_row.get("created") or 0.0))}


def job_record(task_row: Mapping[str, Any], job: Mapping[str, Any], scalars: Iterable[Mapping[str, Any]],
               spec: OutcomeSpec | None = None) -> RunRecord:
    """The mapping, written once: a job row (``Store.jobs``) and its scalars (``Store.scalars``)
    as an MLflow run. ``spec``: the task's objectives (default: read from ``task_row``)."""
    spec = spec or OutcomeSpec.from_task(task_row)
    start_ms, end_ms = millis(job.get("started")) or millis(job.get("created")), millis(job.get("ended"))
    wall = end_ms or start_ms or 0  # the time of a scalar stored without one
    attempt = int(job.get("attempt") or 1)
    rec = RunRecord(int(job["job_id"]), str(job["name"]), RUN_STATUS.get(job["status"], "FAILED"),
                    start_ms, end_ms, job_fingerprint(job))
    rec.params = flatten_params(job.get("arg_dict") or {})
    rows = list(scalars)
    last = max((int(s.get("attempt") or 1) for s in rows), default=attempt)
    counters: dict[str, int] = {}
    for s in rows:
        if s.get("value") is None:  # text: MLflow metrics are numbers
            continue
        n = int(s.get("attempt") or 1)
        key = mlflow_key(s["tag"] if n == last else f"attempt_{n}/{s['tag']}")
        step = _step(s.get("step"))
        if step is None:  # no step (or text stored by an older gml-ray): count on from the last one
            step = counters.get(key, 0)
        counters[key] = step + 1
        created = s.get("created")
        ts = int(created) if isinstance(created, (int, float)) and created else wall
        rec.metrics.append((key, float(s["value"]), ts, step))
    if job.get("reward") is not None:  # a metric to plot and sort by, a tag to filter runs on
        rec.metrics.append(("gml.reward", float(job["reward"]), wall, 0))
        rec.tags["gml.reward"] = repr(float(job["reward"]))
    values = job.get("rewards")
    if spec.multi or not spec.plain:
        for name, value in zip(spec.names, values or []):
            if value is not None:
                rec.metrics.append((mlflow_key(f"gml.objective.{name}"), float(value), wall, 0))
    if job.get("feasible") is not None:
        rec.metrics.append(("gml.feasible", float(bool(job["feasible"])), wall, 0))
        rec.tags["gml.feasible"] = str(bool(job["feasible"])).lower()
        if spec.constraints and job.get("violations"):
            rec.tags["gml.violations"] = clipped_text(dict(zip((c.text for c in spec.constraints), job["violations"])),
                                               MAX_TAG_VALUE)
    for key, value in (("gml.status", job["status"]), ("gml.job", job["name"]), ("gml.attempt", attempt),
                       ("gml.node", job.get("node")), ("gml.job_dir", job.get("job_dir")),
                       ("gml.exit_code", job.get("exit_code")), ("gml.message", job.get("message")),
                       ("gml.parent_job", job.get("parent_id"))):
        if value is not None and value != "":
            rec.tags[key] = clipped_text(str(value), MAX_TAG_VALUE)
    return rec


Batch = tuple[list[tuple[str, float, int, int]], list[tuple[str, str]], list[tuple[str, str]]]


def batches(metrics: Iterable[tuple[str, float, int, int]], params: Iterable[tuple[str, str]],
            tags: Iterable[tuple[str, str]] = ()) -> Iterator[Batch]:
    """Metrics, params and tags in ``log_batch`` calls within MLflow's limits: at most 1000
    metrics, 100 params, 100 tags and 1000 entities in one call."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        p, t = params[:MAX_PARAMS], tags[:MAX_TAGS]
        m = metrics[:min(MAX_METRICS, MAX_ENTITIES - len(p) - len(t))]
        del params[:len(p)], tags[:len(t)], metrics[:len(m)]
        yield m, p, t
