"""Every comparison of rewards: which is better, the best of several, the sign that turns a reward
into a score to maximise. ``optimize_mode`` is an :class:`~gml_ray.vocab.OptimizeMode` or its text."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, TypeVar

from gml_ray.vocab import JobStatus, OptimizeMode

T = TypeVar("T")


def sign(optimize_mode: str) -> int:
    """+1 for maximize, -1 for minimize: ``sign * reward`` is always to be maximised."""
    return 1 if optimize_mode != OptimizeMode.MINIMIZE else -1


def is_better(a: float, b: float | None, optimize_mode: str) -> bool:
    """Whether reward ``a`` beats ``b`` (None: nothing yet)."""
    return b is None or (a > b if optimize_mode != OptimizeMode.MINIMIZE else a < b)


def best(items: Iterable[T], optimize_mode: str, key: Callable[[T], Any] | None = None) -> T:
    """The best of ``items`` (by ``key``); ValueError when there are none."""
    pick = max if optimize_mode != OptimizeMode.MINIMIZE else min
    return pick(items, key=key) if key is not None else pick(items)  # type: ignore[type-var]


def worst_reward(optimize_mode: str) -> float:
    """A reward every real one beats (-inf when maximising)."""
    return -math.inf * sign(optimize_mode)


def has_result(job: Mapping[str, Any]) -> bool:
    """Whether a job row's reward counts: it has one, the job did not end ERROR (an ERROR
    job's reward is from a run cut short: the searcher is told it failed, ``--resume`` runs it
    again) and breaks no constraint (``feasible`` is not 0); every other status's does, a
    running job's so far included."""
    return job.get("reward") is not None and job.get("status") != JobStatus.ERROR and job.get("feasible") != 0


def best_result(jobs: Iterable[dict[str, Any]], optimize_mode: str) -> dict[str, Any] | None:
    """The best of the job rows whose reward counts (:func:`has_result`), None if there is none:
    the scheduler's best job, ``ctl show``'s star and the report's best, alike."""
    rewarded = [j for j in jobs if has_result(j)]
    return best(rewarded, optimize_mode, key=lambda j: j["reward"]) if rewarded else None
