"""``run --resume``: what an interrupted task's earlier attempts leave to the new run."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from ..space import config_key
from ..store import ERROR, Store

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


def read_back(store: Store, task: str, searcher: Any,
              better: Callable[[float, float | None], bool]) -> Resumed:
    """Rebuild the state of an interrupted task from the store.

    ERROR jobs (and jobs a dead run left PENDING/RUNNING) are to run again first, with the next
    attempt number (same job dir); every other job's result is told to ``searcher``
    (``update`` or ``job_failed``), and its config is never launched again.
    """
    row = store.require_task(task)
    out = Resumed(elapsed_before=float(row.get("elapsed_before") or 0.0))
    store.mark_active_jobs(task, ERROR, "interrupted (the run ended)")
    for job in store.jobs(task):
        config, job_id = job["config"], job["job_id"]
        out.next_id = max(out.next_id, job_id + 1)
        out.launched += 1
        out.done_keys.add(config_key(config))
        if job["status"] == ERROR:
            out.reruns.append((config, job_id, int(job["attempt"] or 1) + 1))
        elif job["reward"] is not None:
            searcher.update(config, job["reward"])
            if better(job["reward"], out.best[0] if out.best else None):
                out.best = (job["reward"], job["name"])
        else:
            searcher.job_failed(config, job["status"])
    log.info("resumed: %d earlier jobs, %d to run again", out.launched, len(out.reruns))
    return out
