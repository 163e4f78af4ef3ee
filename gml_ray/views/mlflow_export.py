"""A task's jobs logged as MLflow runs (the ``mlflow`` extra): ``ctl export-mlflow`` and the run's sink.
What each run holds is built by :mod:`gml_ray.views.mlflow_records`; this module finds, makes,
fills and ends the runs.

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

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

from gml_ray.config.tracking import MISSING_MLFLOW, MlflowConfig, missing_module
from gml_ray.errors import UserError
from gml_ray.objectives import OutcomeSpec, task_front
from gml_ray.optimize import best_result
from gml_ray.views.mlflow_records import (
    MAX_TAG_VALUE,
    TAG_JOB_ID,
    TAG_KIND,
    TAG_LOGGED,
    TAG_PARENT,
    TASK_RUN_STATUS,
    RunRecord,
    batches,
    clipped_text,
    identity_tags,
    job_fingerprint,
    job_record,
    loggable,
    millis,
)
from gml_ray.vocab import TaskStatus

log = logging.getLogger(__name__)

DB_NAME = "mlflow.db"  # the default store's file in the work dir
ARTIFACTS_NAME = "mlruns"  # where a local store's experiments keep artifacts (gml-ray writes none)

SEARCH_PAGE = 1000  # runs per search_runs page
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
        run = self._call("create_run", self.experiment_id, start_time=millis(self.task.get("started"))
                         or millis(self.task.get("created")), tags=tags, run_name=str(self.task["name"]))
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
        when = millis(task_row.get("ended")) or millis(task_row.get("heartbeat")) or int(time.time() * 1000)
        tags = {"gml.status": str(status)}
        metrics: list[Any] = []
        best = best_result(jobs, task_row.get("optimize_mode") or "maximize")
        if best is not None:
            tags["gml.best_job"] = str(best["name"])
            metrics.append(Metric("gml.best_reward", float(best["reward"]), when, 0))
        front = task_front(task_row, jobs)
        if front is not None and front.spec.multi:
            tags["gml.front"] = clipped_text(",".join(j["name"] for j in front.members), MAX_TAG_VALUE)
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
