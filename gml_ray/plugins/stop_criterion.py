"""Stop criteria: when to stop launching jobs (and when to stop the task).

A criterion gets the scheduler at four points (manual 5.1): ``before_run``, ``before_iter`` (before
each launch), ``after_iter`` (after each launch) and ``after_run``. Setting ``scheduler.is_stop =
True`` stops launching; running jobs then finish. Built-in criteria may also implement ``check``,
called whenever a job ends or the scheduler wakes, and may end running jobs through
``scheduler.request_stop(reason, kill_running=True)``.
"""
from __future__ import annotations

import math
import time
from typing import Any

from gml_ray.optimize import is_better
from gml_ray.plugins.registry import Registry

STOP_CRITERIONS = Registry("stop criterion")


def get_current_time() -> float:
    """Seconds since the epoch (what the manual's example criterion calls)."""
    return time.time()


class BaseStopCriterion:
    """Does nothing at each hook; subclasses override what they need."""

    def before_run(self, scheduler: Any) -> None:
        pass

    def after_run(self, scheduler: Any) -> None:
        pass

    def before_iter(self, scheduler: Any) -> None:
        pass

    def after_iter(self, scheduler: Any) -> None:
        pass

    def check(self, scheduler: Any) -> None:
        """Called when a job ends and at each wake-up of the scheduler loop."""

    def seconds_left(self) -> float | None:
        """Seconds until this criterion will want to stop the task by time (the loop wakes by
        then); None when it has no deadline."""
        return None


@STOP_CRITERIONS.register_module()
class StopCriterion(BaseStopCriterion):
    """The built-in limits: ``max_tries`` jobs launched, ``time_limits`` seconds for the task,
    a job reaching ``max_reward`` (at or below it for minimize), and ``time_limits_per_job``
    seconds per job (enforced by the job itself, which is then KILLED).

    Reaching ``max_tries`` lets running jobs finish; ``time_limits`` and ``max_reward`` end them.
    """

    def __init__(self, max_tries: int | None = None, time_limits: float | None = None,
                 max_reward: float = math.inf, time_limits_per_job: float | None = None) -> None:
        self.max_tries = max_tries
        self.time_limits = time_limits
        self.max_reward = max_reward
        self.time_limits_per_job = time_limits_per_job
        self._start = time.time()

    def before_run(self, scheduler: Any) -> None:
        # A resumed task's earlier attempts count towards time_limits.
        self._start = time.time() - getattr(scheduler, "elapsed_before", 0.0)

    def before_iter(self, scheduler: Any) -> None:
        if self.max_tries is not None and scheduler.num_launched >= self.max_tries:
            scheduler.request_stop(f"max_tries={self.max_tries} reached")
        self.check(scheduler)

    def check(self, scheduler: Any) -> None:
        if self.time_limits is not None and time.time() - self._start >= self.time_limits:
            scheduler.request_stop(f"time_limits={self.time_limits:g}s reached", kill_running=True)
        best = scheduler.best_reward
        if best is not None and math.isfinite(self.max_reward):
            if not is_better(self.max_reward, best, scheduler.optimize_mode):  # best is as good
                scheduler.request_stop(f"max_reward={self.max_reward:g} reached", kill_running=True)

    def seconds_left(self) -> float | None:
        """Seconds until ``time_limits`` runs out (None without a limit)."""
        if self.time_limits is None:
            return None
        return max(0.0, self._start + self.time_limits - time.time())


def build_stop_criterion(cfg: dict[str, Any]) -> Any:
    """Build from ``{type: Name, **kwargs}``; without ``type`` the built-in StopCriterion, whose
    values are read as in ``search_config.yaml`` (``time_limits: 1`` is an hour, ``'30m'``,
    ``max_reward: inf``). A ConfigError names the key of a value it cannot read."""
    cfg = dict(cfg)
    if cfg.get("type") in (None, "StopCriterion"):
        from gml_ray.config.task import parse_stop_criterion
        stop = parse_stop_criterion(cfg)
        return StopCriterion(stop.max_tries, stop.time_limits, stop.max_reward, stop.time_limits_per_job)
    return STOP_CRITERIONS.build(cfg)
