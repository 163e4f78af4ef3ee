"""Scalars of a task's jobs as TensorBoard event files, with each job's args as HParams.

Layout: ``<logdir>/<job_name>/events.out.tfevents.*`` (default logdir ``<task_dir>/tensorboard``),
one TensorBoard run per job holding

* every numeric scalar the job reported (its latest attempt; earlier attempts of a resumed job go
  to ``<job_name>/attempt_<n>``), at its step and wall time; NaN and inf as they are;
  non-numeric values as text summaries under the same tag;
* an HParams session: the job's ``arg_dict`` (numbers, strings, bools; other values as JSON text),
  its end status, and its scalar tags as metrics; TensorBoard's HParams tab then compares jobs.

``tensorboard --logdir <logdir>`` shows them. Writing a job again replaces its event files, so
export is idempotent. The events are written with tensorboardX (a maintained writer).
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Iterable

from gml_ray.errors import UserError
from gml_ray.vocab import JobStatus

log = logging.getLogger(__name__)

LOGDIR_NAME = "tensorboard"
EVENTS_PREFIX = "events.out.tfevents."


# A job's end as TensorBoard's HParams plugin names it. Its Status has no "aborted": a job the
# search stopped early ended as planned, its values valid (success); a killed one did not (failure).
TB_STATUS: dict[str, str] = {JobStatus.FINISHED: "STATUS_SUCCESS", JobStatus.EARLY_STOPPED: "STATUS_SUCCESS",
                             JobStatus.ERROR: "STATUS_FAILURE", JobStatus.KILLED: "STATUS_FAILURE"}

def default_logdir(task_row: dict) -> str:
    if not task_row.get("task_dir"):
        raise UserError(f"task {task_row['name']} has no task dir: pass --logdir")
    return os.path.join(task_row["task_dir"], LOGDIR_NAME)


def _hparam_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if not (isinstance(value, float) and math.isnan(value)) else "nan"
    return json.dumps(value, default=str, sort_keys=True)


def _session_summaries(hparams: dict[str, Any], metric_tags: Iterable[str], status: str) -> tuple[Any, Any]:
    """(session_start_info, session_end_info or None) summaries of an HParams session."""
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.summary import hparams as tbx_hparams

    _, ssi, _ = tbx_hparams({k: v for k, v in hparams.items() if v is not None},
                            {t: 0.0 for t in metric_tags})
    end_status = TB_STATUS.get(status)
    if end_status is None:  # still PENDING or RUNNING: the session has not ended
        return ssi, None
    content = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(end_status)),
                                version=0)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name="hparams", content=content.SerializeToString()))
    sei = Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=meta)])
    return ssi, sei


def _clear_events(run_dir: str) -> None:
    """Remove the event files a previous export left in ``run_dir`` (only those)."""
    if not os.path.isdir(run_dir):
        return
    for root, _dirs, files in os.walk(run_dir):
        for name in files:
            if name.startswith(EVENTS_PREFIX):
                os.remove(os.path.join(root, name))


_STEP_MIN, _STEP_MAX = -(1 << 63), (1 << 63) - 1


def _step(step: Any) -> int | None:
    """A stored step as an int64 TensorBoard takes, or None (no step, or not an integer)."""
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, int) and not isinstance(step, bool) and _STEP_MIN <= step <= _STEP_MAX:
        return step
    return None


def _write_run(run_dir: str, rows: list[dict], hparams: dict[str, Any] | None, status: str,
               wall_default: float) -> int:
    from tensorboardX import SummaryWriter

    os.makedirs(run_dir, exist_ok=True)
    written = 0
    tbx_log = logging.getLogger("tensorboardX.x2num")  # it warns on every NaN/inf scalar
    level = tbx_log.level
    tbx_log.setLevel(logging.ERROR)
    writer = SummaryWriter(logdir=run_dir, flush_secs=3600, max_queue=1000)
    try:
        counters: dict[str, int] = {}
        for s in rows:
            tag = s["tag"]
            # No step, or one that is not an integer (text stored by an older gml-ray, 3.5):
            # count on from the tag's last step.
            step = _step(s["step"])
            if step is None:
                step = counters.get(tag, 0)
            counters[tag] = step + 1
            created = s.get("created")
            wall = (created / 1000.0) if isinstance(created, (int, float)) and created else wall_default
            if s["value"] is not None:
                writer.add_scalar(tag, float(s["value"]), step, walltime=wall)
            else:
                writer.add_text(tag, str(s["text"]), step, walltime=wall)
            written += 1
        if hparams is not None:
            tags = sorted({s["tag"] for s in rows if s["value"] is not None})
            ssi, sei = _session_summaries(hparams, tags, status)
            writer.file_writer.add_summary(ssi, walltime=wall_default)
            if sei is not None:
                writer.file_writer.add_summary(sei, walltime=wall_default)
    finally:
        writer.close()
        tbx_log.setLevel(level)
    return written


def export_job(store: Any, task: str, job: dict | int, logdir: str | None = None,
               task_row: dict | None = None) -> int:
    """Write one job's scalars and hparams under ``logdir``; returns how many scalars it wrote.

    ``job`` is a row of ``store.jobs(task)`` or a job id; a dict needs ``job_id``, ``name``,
    ``arg_dict`` and ``status`` (``started``, ``created`` and ``attempt`` are used when present).
    """
    if not isinstance(job, dict):
        found = [j for j in store.jobs(task) if j["job_id"] == int(job)]
        if not found:
            raise UserError(f"task {task} has no job {job!r}")
        row: dict = found[0]
    else:
        row = job
    logdir = logdir or default_logdir(task_row or store.require_task(task))
    rows = store.scalars(task, [row["job_id"]])
    by_attempt: dict[int, list[dict]] = {}
    for s in rows:
        by_attempt.setdefault(int(s["attempt"] or 1), []).append(s)
    last = max(by_attempt, default=int(row.get("attempt") or 1))
    run_dir = os.path.join(logdir, row["name"])
    _clear_events(run_dir)
    wall = row.get("started") or row.get("created") or 0.0
    hparams = {k: _hparam_value(v) for k, v in (row.get("arg_dict") or {}).items()}
    written = _write_run(run_dir, by_attempt.get(last, []), hparams, row["status"], wall)
    for attempt, arows in sorted(by_attempt.items()):
        if attempt != last:
            written += _write_run(os.path.join(run_dir, f"attempt_{attempt}"), arows, None,
                                  row["status"], wall)
    return written


def export_task(store: Any, task: str, logdir: str | None = None,
                names: Iterable[str] | None = None) -> tuple[str, int, int]:
    """Write every job of ``task`` (or only ``names``); returns (logdir, jobs, scalars written)."""
    task_row = store.require_task(task)
    logdir = os.path.abspath(logdir or default_logdir(task_row))
    jobs = store.jobs(task, names)
    scalars = 0
    for job in jobs:
        scalars += export_job(store, task, job, logdir, task_row)
    return logdir, len(jobs), scalars


def export_job_quietly(store: Any, task: str, job: dict | int, logdir: str | None = None) -> None:
    """:func:`export_job` for the scheduler at a job's end: a failure is logged, never raised."""
    try:
        export_job(store, task, job, logdir)
    except Exception:  # noqa: BLE001 - TensorBoard files must never end a search
        log.exception("could not write TensorBoard events for job %s of %s",
                      job.get("name") if isinstance(job, dict) else job, task)


def on_job_end(store: Any, task: str, task_dir: str, job: Any, status: str) -> None:
    """The scheduler's hook when ``tensorboard: true``: write an ended job (a ``schedulers.job``
    Job) to ``<task_dir>/tensorboard/<job name>``. Never raises."""
    outcome = getattr(job, "outcome", None) or {}
    row = {"job_id": job.spec.job_id, "name": job.name, "arg_dict": dict(job.arg_dict or {}),
           "status": status, "attempt": job.spec.attempt, "started": outcome.get("started")}
    export_job_quietly(store, task, row, os.path.join(task_dir, LOGDIR_NAME))
