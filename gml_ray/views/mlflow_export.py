"""A task's jobs as MLflow runs (the ``mlflow`` extra): the one mapping from store rows to MLflow.

Layout in the experiment (default: the task's name) at the tracking URI (default:
:func:`default_tracking_uri`, a SQLite file beside the store, which MLflow 3 reads without a
server):

* the task is a parent run (its name, tags ``gml.task``, ``gml.task_created``, ``gml.kind=task``,
  status, best job and reward; with several objectives the front and its hypervolume);
* each ended job is a child run (``mlflow.parentRunId``) named as the job, holding its
  ``arg_dict`` as params (nested keys flattened with dots), every numeric scalar it reported as a
  metric at its step and report time (earlier attempts of a job run again under
  ``attempt_<n>/<tag>``), its reward (metric and tag ``gml.reward``; each objective as ``gml.objective.<name>``,
  feasibility as ``gml.feasible``), and its status, node, job dir as tags.

Idempotence: runs are found again by their ``gml.*`` identity tags, never remembered in a file.
A child run is complete when it has ended (its status is not RUNNING: its end is the last request,
after all its data) and its tag ``gml.logged``, given as it is made, holds the job's fingerprint
(attempt, status, end). A run that is not complete (logging was cut short) or has another
fingerprint (the job ran again, ``--resume``) is deleted and logged anew, so a job has one active
run whatever was interrupted, and logging a task twice changes nothing.

A job is made as a run with its tags, then its metrics and params go in ``MlflowClient.log_batch``
calls within MLflow's per-call limits (:func:`batches`: 1000 metrics, 100 params, 100 tags, 1000
in all), then its end: 3 requests for up to 1000 scalars and 100 args. :func:`export_task` is
``ctl export-mlflow``; the run's background logger (:mod:`gml_ray.engine.tracking`) drives
:class:`MlflowSink` job by job.
"""
from __future__ import annotations

import json
import logging
import math
import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from gml_ray.config.tracking import MISSING_MLFLOW, MlflowConfig, missing_module
from gml_ray.errors import UserError
from gml_ray.objectives import OutcomeSpec, task_front
from gml_ray.optimize import best_result
from gml_ray.vocab import ACTIVE_JOB_STATUSES, JobStatus, TaskStatus

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"  # the default store's file in the work dir
ARTIFACTS_NAME = "mlruns"  # where a local store's experiments keep artifacts (gml-ray writes none)

# Identity tags: how a run is found again (export-mlflow, --resume, a logger that retries).
TAG_TASK, TAG_CREATED, TAG_KIND, TAG_JOB_ID = "gml.task", "gml.task_created", "gml.kind", "gml.job_id"
TAG_LOGGED = "gml.logged"  # a child run's fingerprint; the run counts once it has ended (its last request)
TAG_PARENT, TAG_RUN_NAME = "mlflow.parentRunId", "mlflow.runName"

# MLflow's limits (mlflow.utils.validation): per log_batch call, and per key and value.
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE = 250, 6000, 8000
SEARCH_PAGE = 1000  # runs per search_runs page

# A job's end as an MLflow run status; the gml status itself is the tag gml.status.
RUN_STATUS: dict[str, str] = {JobStatus.FINISHED: "FINISHED", JobStatus.ERROR: "FAILED",
                              JobStatus.KILLED: "KILLED", JobStatus.EARLY_STOPPED: "KILLED",
                              JobStatus.PAUSED: "KILLED"}
TASK_RUN_STATUS: dict[str, str] = {TaskStatus.FINISHED: "FINISHED", TaskStatus.ERROR: "FAILED",
                                   TaskStatus.KILLED: "KILLED", TaskStatus.RUNNING: "RUNNING"}
# MLflow error codes that no retry cures (the request itself is refused).
PERMANENT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE",
                             "PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_DOES_NOT_EXIST"})


def default_tracking_uri(work_dir: str) -> str:
    """The tracking URI when none is given: ``sqlite:///<work dir>/mlflow.db`` (MLflow 3's own
    default kind of store; no server needed, ``mlflow ui --backend-store-uri`` shows it)."""
    return "sqlite:///" + os.path.join(os.path.abspath(work_dir), DB_NAME)


@dataclass(frozen=True)
class MlflowTarget:
    """Where a task's runs go: a tracking URI and an experiment name, both resolved."""

    tracking_uri: str
    experiment: str


def resolve_target(work_dir: str, task: str, cfg: MlflowConfig | None = None,
                   tracking_uri: str | None = None, experiment: str | None = None) -> MlflowTarget:
    """The explicit values, else the config's (``tracking.mlflow``), else the defaults (the work
    dir's SQLite store, an experiment named as the task)."""
    uri = tracking_uri or (cfg.tracking_uri if cfg else None) or default_tracking_uri(work_dir)
    return MlflowTarget(uri, experiment or (cfg.experiment if cfg else None) or task)


def require_mlflow(what: str, tracking_uri: str | None = None) -> None:
    """UserError (one line, exit 2) naming the extra when MLflow (or its SQL store) is missing."""
    missing = missing_module(tracking_uri)
    if missing is not None:
        raise UserError(f"{what} {MISSING_MLFLOW}" + ("" if missing == "mlflow" else f" (no module {missing!r})"))


# ---- the mapping: store rows → MLflow entities ------------------------------------------------------

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


def _text(value: Any, limit: int) -> str:
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
            out[mlflow_key(name)] = _text(str(value) if plain else value, MAX_PARAM_VALUE)
    return out


_STEP_MAX = (1 << 63) - 1


def _step(step: Any) -> int | None:
    """A stored step as the int64 MLflow takes, or None (no step, text, out of range)."""
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, int) and not isinstance(step, bool) and -_STEP_MAX - 1 <= step <= _STEP_MAX:
        return step
    return None


def _ms(seconds: Any) -> int | None:
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
    start_ms, end_ms = _ms(job.get("started")) or _ms(job.get("created")), _ms(job.get("ended"))
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
            rec.tags["gml.violations"] = _text(dict(zip((c.text for c in spec.constraints), job["violations"])),
                                               MAX_TAG_VALUE)
    for key, value in (("gml.status", job["status"]), ("gml.job", job["name"]), ("gml.attempt", attempt),
                       ("gml.node", job.get("node")), ("gml.job_dir", job.get("job_dir")),
                       ("gml.exit_code", job.get("exit_code")), ("gml.message", job.get("message")),
                       ("gml.parent_job", job.get("parent_id"))):
        if value is not None and value != "":
            rec.tags[key] = _text(str(value), MAX_TAG_VALUE)
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


def is_permanent(exc: BaseException) -> bool:
    """Whether MLflow refused the request itself (a retry gets the same answer), not that the
    tracking server could not be reached or was busy."""
    code = getattr(exc, "error_code", None)
    return isinstance(code, str) and code in PERMANENT_CODES


def quiet_mlflow_logs() -> None:
    """MLflow and Alembic log each schema step of a new local store at INFO: not the user's news."""
    for name in ("mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ---- the sink: one experiment, the task's parent run, its child runs ------------------------------------

@dataclass
class _Child:
    run_id: str
    fingerprint: str | None  # the gml.logged tag of an ended run: None while the run is incomplete


class MlflowSink:
    """The task's runs in one MLflow experiment: the parent run (found by its identity tags or
    made), and an index of its child runs by job id, read once. Not thread-safe: one user.

    Raises whatever MLflow raises (:func:`is_permanent` tells which errors a retry cures)."""

    def __init__(self, target: MlflowTarget, task_row: Mapping[str, Any]) -> None:
        quiet_mlflow_logs()
        from mlflow import MlflowClient

        self.target, self.task = target, dict(task_row)
        self.identity = identity_tags(task_row)
        self.client = MlflowClient(tracking_uri=target.tracking_uri)
        self.calls = 0  # MLflow requests made (benchmarks)
        self.experiment_id = self._experiment()
        self.parent_id = self._parent()
        self.children = self._children()

    # Each MLflow request goes through here: counted, and one place to read in a traceback.
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return getattr(self.client, method)(*args, **kwargs)

    def _experiment(self) -> str:
        name = self.target.experiment
        exp = self._call("get_experiment_by_name", name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":  # its runs would be refused: bring it back
                self._call("restore_experiment", exp.experiment_id)
            return str(exp.experiment_id)
        location = None
        if self.target.tracking_uri.startswith("sqlite:///"):
            # A local store's artifacts beside its file, not in whatever cwd the process has.
            db = self.target.tracking_uri[len("sqlite:///"):]
            location = os.path.join(os.path.dirname(os.path.abspath(db)), ARTIFACTS_NAME)
        try:
            return str(self._call("create_experiment", name, artifact_location=location))
        except Exception as exc:  # two runs made it at once: the other one won
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            return str(self._call("get_experiment_by_name", name).experiment_id)

    def _search(self, filters: dict[str, str]) -> list[Any]:
        text = " AND ".join(f"tags.`{k}` = '{v}'" for k, v in filters.items())
        out, token = [], None
        while True:
            page = self._call("search_runs", [self.experiment_id], filter_string=text,
                              max_results=SEARCH_PAGE, page_token=token, order_by=["attributes.start_time ASC"])
            out.extend(page)
            token = page.token
            if not token:
                return out

    def _parent(self) -> str:
        found = self._search({**self.identity, TAG_KIND: "task"})
        if found:
            return str(found[0].info.run_id)  # the oldest, should two ever exist
        tags = {**self.identity, TAG_KIND: "task", "gml.task_dir": str(self.task.get("task_dir") or ""),
                "gml.reward_attribute": str(self.task.get("reward_attribute") or "")}
        run = self._call("create_run", self.experiment_id, start_time=_ms(self.task.get("started"))
                         or _ms(self.task.get("created")), tags=tags, run_name=str(self.task["name"]))
        return str(run.info.run_id)

    def _children(self) -> dict[int, _Child]:
        """The parent's child runs by job id. Of two runs of one job (a create whose answer was
        lost, then retried) the complete one stays; the other is deleted."""
        out: dict[int, _Child] = {}
        for run in self._search({TAG_PARENT: self.parent_id}):
            tags = run.data.tags
            try:
                job_id = int(tags[TAG_JOB_ID])
            except (KeyError, ValueError):
                continue  # not one of ours
            # Complete: its end, the last request after all its data, arrived.
            done = run.info.status != "RUNNING"
            child = _Child(str(run.info.run_id), tags.get(TAG_LOGGED) if done else None)
            old = out.get(job_id)
            if old is not None:
                keep, drop = (old, child) if old.fingerprint is not None else (child, old)
                self._call("delete_run", drop.run_id)
                child = keep
            out[job_id] = child
        return out

    def start(self) -> None:
        """Mark the parent run RUNNING (a run, or a resumed one, has begun)."""
        self._call("update_run", self.parent_id, status="RUNNING")

    def current(self, job: Mapping[str, Any]) -> bool:
        """Whether the job's child run is logged complete for the job as it is now."""
        child = self.children.get(int(job["job_id"]))
        return child is not None and child.fingerprint == job_fingerprint(job)

    def log_job(self, rec: RunRecord) -> bool:
        """Log one job as a child run; False when its run was already current (nothing sent).
        A stale or incomplete run of the job is deleted first. Requests: the run (with its
        tags: identity, fingerprint and the job's own), its metrics and params in batches, its end
        (which makes it count). Tags go with the run: one SQL session fewer per job than in a batch."""
        old = self.children.get(rec.job_id)
        if old is not None and old.fingerprint == rec.fingerprint:
            return False
        from mlflow.entities import Metric, Param

        if old is not None:
            self._call("delete_run", old.run_id)
            del self.children[rec.job_id]
        tags = {**rec.tags, **self.identity, TAG_KIND: "job", TAG_JOB_ID: str(rec.job_id),
                TAG_PARENT: self.parent_id, TAG_LOGGED: rec.fingerprint}
        run = self._call("create_run", self.experiment_id, start_time=rec.start_ms, tags=tags, run_name=rec.name)
        run_id = str(run.info.run_id)
        self.children[rec.job_id] = _Child(run_id, None)  # incomplete until the last call
        for metrics, params, _ in batches(rec.metrics, rec.params.items()):
            self._call("log_batch", run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in metrics],
                       params=[Param(k, v) for k, v in params])
        self._call("set_terminated", run_id, status=rec.status, end_time=rec.end_ms)
        self.children[rec.job_id] = _Child(run_id, rec.fingerprint)
        return True

    def finish(self, task_row: Mapping[str, Any], jobs: list[dict[str, Any]]) -> None:
        """The parent run's summary (status, best job and reward; the front of a task with several
        objectives) and its end, from the task row and all its job rows."""
        from mlflow.entities import Metric, RunTag

        status = task_row["status"]
        when = _ms(task_row.get("ended")) or _ms(task_row.get("heartbeat")) or int(time.time() * 1000)
        tags = {"gml.status": str(status)}
        metrics: list[Any] = []
        best = best_result(jobs, task_row.get("optimize_mode") or "maximize")
        if best is not None:
            tags["gml.best_job"] = str(best["name"])
            metrics.append(Metric("gml.best_reward", float(best["reward"]), when, 0))
        front = task_front(task_row, jobs)
        if front is not None and front.spec.multi:
            tags["gml.front"] = _text(",".join(j["name"] for j in front.members), MAX_TAG_VALUE)
            metrics.append(Metric("gml.hypervolume", float(front.hypervolume), when, 0))
            metrics.append(Metric("gml.front_size", float(len(front.members)), when, 0))
        metrics = [m for m in metrics if not math.isnan(m.value)]
        self._call("log_batch", self.parent_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        run_status = TASK_RUN_STATUS.get(status, "FAILED")
        if run_status == "RUNNING":
            self._call("update_run", self.parent_id, status="RUNNING")
        else:
            self._call("set_terminated", self.parent_id, status=run_status, end_time=when)


# ---- ctl export-mlflow ------------------------------------------------------------------------------------

@dataclass
class ExportResult:
    """What :func:`export_task` did."""

    target: MlflowTarget
    parent_run_id: str
    logged: int  # jobs logged now
    current: int  # jobs whose run was already complete and current
    metrics: int  # metrics sent
    seconds: float


def export_task(store: Any, task: str, target: MlflowTarget) -> ExportResult:
    """Log every ended job of a task that MLflow does not hold yet (or holds stale) and the
    parent run's summary; re-running it logs nothing new. A task a live run is writing is
    refused (its own logger may be logging the same jobs)."""
    started = time.perf_counter()
    task_row = store.require_task(task)
    if task_row["status"] == TaskStatus.RUNNING:
        raise UserError(f"task {task} is still running: export it once it has ended "
                        f"(its run logs to MLflow itself when the config has tracking.mlflow)")
    require_mlflow("ctl export-mlflow", target.tracking_uri)
    sink = MlflowSink(target, task_row)
    spec = OutcomeSpec.from_task(task_row)
    jobs = store.jobs(task)
    logged = current = metrics = 0
    for job in jobs:
        if not loggable(job):
            continue
        if sink.current(job):
            current += 1
            continue
        rec = job_record(task_row, job, store.scalars(task, [job["job_id"]]), spec)
        sink.log_job(rec)
        logged += 1
        metrics += len(rec.metrics)
    sink.finish(task_row, jobs)
    return ExportResult(target, sink.parent_id, logged, current, metrics, time.perf_counter() - started)
