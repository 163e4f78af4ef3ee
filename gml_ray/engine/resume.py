"""``run --resume``: whether a task may go on with the config given (the same run mode, and no
edit but how long and how wide it searches), and what its earlier attempts leave to the new run."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from gml_ray.config.modes import job_mode, known_modes
from gml_ray.config.task import TaskConfig
from gml_ray.engine.checkpoints import discard
from gml_ray.errors import UserError
from gml_ray.objectives import Outcome, row_outcome
from gml_ray.space import config_key
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus

log = logging.getLogger("gml_ray.scheduler")


@dataclass
class Resumed:
    """The earlier attempts, read back: what the loop starts from."""

    elapsed_before: float = 0.0  # their run time (time_limits and the views count it)
    next_id: int = 1  # the next job id
    launched: int = 0  # jobs they launched (max_tries counts them)
    # ERROR jobs to run again first, as (config, job_id, next attempt): the loop makes their Jobs
    # when it starts them (after the run's actor pool exists)
    reruns: list[tuple[dict, int, int]] = field(default_factory=list)
    done_keys: set[str] = field(default_factory=set)  # configs never to launch again
    best: tuple[float, str] | None = None  # (reward, job name) of the best job so far
    paused: set[int] = field(default_factory=set)  # ids of the PAUSED jobs among the reruns
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # job name -> outcome (objectives, constraints)


def read_back(store: Store, task: str, searcher: Any,
              better: Callable[[float, float | None], bool]) -> Resumed:
    """Rebuild the state of an interrupted task from the store.

    ERROR and PAUSED jobs (and jobs a dead run left PENDING/RUNNING) are to run again first, with
    the next attempt number (same job dir; from their newest checkpoint when they have one); every other job's result is told to ``searcher``
    (``update`` or ``job_failed``), and its config is never launched again.
    """
    row = store.require_task(task)
    out = Resumed(elapsed_before=float(row.get("elapsed_before") or 0.0))
    store.mark_active_jobs(task, JobStatus.ERROR, "interrupted (the run ended)")
    for job in store.jobs(task):
        config, job_id = job["config"], job["job_id"]
        out.next_id = max(out.next_id, job_id + 1)
        out.launched += 1
        out.done_keys.add(config_key(config))
        if job["status"] in (JobStatus.ERROR, JobStatus.PAUSED):  # PAUSED: from its checkpoint
            out.reruns.append((config, job_id, int(job["attempt"] or 1) + 1))
            if job["status"] == JobStatus.PAUSED:
                out.paused.add(job_id)
        else:
            outcome = row_outcome(job)
            searcher.tell(config, job["reward"], job["status"], outcome)
            if outcome is not None:
                out.outcomes[job["name"]] = outcome
            if job["reward"] is not None and job.get("feasible") != 0 \
                    and better(job["reward"], out.best[0] if out.best else None):
                out.best = (job["reward"], job["name"])
    # Checkpoints of jobs that never started (PBT copied one for a new job, then the run died):
    # their ids are taken by no job row; the copies go, and no new job reuses such an id.
    started = {j["job_id"] for j in store.jobs(task, columns=("status",))}
    for row in store.checkpoints(task):
        out.next_id = max(out.next_id, row["job_id"] + 1)
        if row["job_id"] not in started:
            store.remove_checkpoint(task, row["job_id"], row["path"])
            discard(row["path"])
    log.info("resumed: %d earlier jobs, %d to run again", out.launched, len(out.reruns))
    return out


def check_same_mode(task: str, config_yaml: str | None, cfg: TaskConfig) -> None:
    """``--resume`` must run a task the way it ran: in the same job mode (e.g. ``--benchmark``
    with the same MuJoCo function), or in none."""
    try:
        raw = yaml.safe_load(config_yaml or "") or {}
    except yaml.YAMLError:
        return
    if not isinstance(raw, dict):
        return
    was = next(((m, label) for m in known_modes() if (label := m.label_of(raw)) is not None), None)
    now = job_mode(cfg.mode) if cfg.mode is not None else None
    if was is not None and now is None:
        raise UserError(f"task {task} ran {was[0].title} ({was[1]}): resume it with {was[0].option}")
    if now is not None and (was is None or was[0] is not now):
        raise UserError(f"task {task} is not a task of {now.title}: resume it without {now.option}")
    if now is not None and was is not None and was[1] != now.label(cfg.mode_settings):
        raise UserError(f"task {task} ran {was[1]}, the config now says {now.label(cfg.mode_settings)}: "
                        f"resume it with the config it ran")


# What ``--resume`` may change without --changed-config: how long and how wide the search goes
# on (raise max_tries to continue a finished search), not what a job or the search is.
RESUME_MAY_CHANGE = (("scheduler", "stop_criterion"), ("scheduler", "parallel_size"), ("scheduler", "checkpoint"))


def config_change(old_yaml: str | None, new_yaml: str) -> tuple[str | None, bool]:
    """Where a resumed task's config differs from the one it ran, outside what a resume may
    change (a dotted path, or None), and whether it differs at all."""
    try:
        old = yaml.safe_load(old_yaml or "")
    except yaml.YAMLError:
        return None, False  # an unreadable stored config: nothing to compare with
    new = yaml.safe_load(new_yaml)
    if _first_difference(old, new, "") is None:
        return None, False
    return _first_difference(_without_free(old), _without_free(new), ""), True


def _without_free(config: Any) -> Any:
    """``config`` without the keys of :data:`RESUME_MAY_CHANGE`."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for section, key in RESUME_MAY_CHANGE:
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k != key}
            if not out[section]:
                del out[section]  # a section that held only those: as if absent
    return out


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            where = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if where:
                return where
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            where = _first_difference(x, y, f"{path}[{i}]")
            if where:
                return where
        return None
    return None if a == b else (path or "the top level")
