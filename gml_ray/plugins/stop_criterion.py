"""The stop criterion contract (manual 5.1): when to stop launching jobs, and when to end the task.

A criterion's hooks get ``scheduler``, a :class:`SchedulerView` of the running task. Setting
``scheduler.is_stop = True`` stops launching (running jobs finish); ``request_stop`` says why, and
may end the running jobs too. :class:`StopCriterion` is the built-in one (``max_tries``,
``time_limits``, ``max_reward``, ``time_limits_per_job``).
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from typing import Any, Sequence

from gml_ray.config.task import parse_stop_criterion
from gml_ray.optimize import is_better
from gml_ray.plugins.registry import Registry

STOP_CRITERIONS = Registry("stop criterion")
"""``scheduler.stop_criterion.type`` in a config names a class registered here."""


def get_current_time() -> float:
    """Seconds since the epoch (what the manual's example criterion calls)."""
    return time.time()


class SchedulerView(ABC):
    """What a stop criterion sees of the running task: the ``scheduler`` its hooks get.

    The facts are read-only; :attr:`is_stop` and :meth:`request_stop` are how a criterion acts.
    A criterion may keep its own attributes on it (the manual's example sets ``scheduler.step``):
    the same view is passed to every hook of a run.
    """

    @property
    @abstractmethod
    def task(self) -> str:
        """The task's name."""

    @property
    @abstractmethod
    def reward_attribute(self) -> str:
        """The scalar the search optimises."""

    @property
    @abstractmethod
    def optimize_mode(self) -> str:
        """``maximize`` or ``minimize`` (an :class:`~gml_ray.vocab.OptimizeMode`)."""

    @property
    @abstractmethod
    def objective_modes(self) -> list[str]:
        """Each objective's ``optimize_mode``, in order (one entry for a single reward)."""

    @property
    @abstractmethod
    def num_launched(self) -> int:
        """Jobs launched so far, earlier attempts of a resumed task included (filtered ones not)."""

    @property
    @abstractmethod
    def running(self) -> int:
        """Jobs running now."""

    @property
    @abstractmethod
    def best_reward(self) -> float | None:
        """The best reward of any job so far (None before the first); ERROR jobs' do not count."""

    @property
    @abstractmethod
    def best_job(self) -> str | None:
        """The name of the job with :attr:`best_reward`."""

    @property
    @abstractmethod
    def pareto_front(self) -> dict[str, tuple[float, ...]]:
        """Job name → objective values of the feasible jobs no other feasible job dominates (their
        last values so far; running jobs included). Empty for a task with one objective and no
        constraint (its best job is :attr:`best_job`)."""

    @property
    @abstractmethod
    def elapsed(self) -> float:
        """Seconds the task has run, earlier attempts of a resumed task included."""

    @property
    @abstractmethod
    def elapsed_before(self) -> float:
        """Seconds the earlier attempts of a resumed task ran (0 on a first run)."""

    @property
    @abstractmethod
    def is_stop(self) -> bool:
        """Whether launching has stopped. Set it True to stop launching; running jobs finish."""

    @is_stop.setter
    @abstractmethod
    def is_stop(self, value: bool) -> None: ...

    @abstractmethod
    def request_stop(self, reason: str, kill_running: bool = False) -> None:
        """Stop launching, with ``reason`` shown by ``ctl show`` and in the run's last line;
        ``kill_running`` also ends the running jobs (KILLED)."""


class BaseStopCriterion:
    """A criterion that never stops the task: every hook does nothing, so a subclass overrides
    the ones it needs. All hooks run in the scheduler's loop; an exception in one ends the task
    with ERROR (in ``after_run``, it is only logged), the traceback in ``scheduler.log``."""

    def before_run(self, scheduler: SchedulerView) -> None:
        """Called once, before the first job of a run is launched (again on each ``--resume``)."""

    def after_run(self, scheduler: SchedulerView) -> None:
        """Called once, after the last job of a run ended (however the run ends)."""

    def before_iter(self, scheduler: SchedulerView) -> None:
        """Called before each job is launched; set ``scheduler.is_stop`` to launch no more."""

    def after_iter(self, scheduler: SchedulerView) -> None:
        """Called after each job is launched (filtered configs are not launched: no call)."""

    def check(self, scheduler: SchedulerView) -> None:
        """Called when a job ends and at each wake-up of the scheduler loop (at least every
        0.5 s): the place for limits that do not wait for a launch."""

    def seconds_left(self) -> float | None:
        """Seconds until this criterion will want to stop the task by time (the loop wakes by
        then); None when it has no deadline."""
        return None


@STOP_CRITERIONS.register_module()
class StopCriterion(BaseStopCriterion):
    """The built-in limits: ``max_tries`` jobs launched, ``time_limits`` seconds for the task,
    a job reaching ``max_reward`` (at or below it for minimize; with several objectives, one
    target per objective, all reached by one feasible job), and ``time_limits_per_job`` seconds
    per job (enforced by the job itself, which is then KILLED).

    Reaching ``max_tries`` lets running jobs finish; ``time_limits`` and ``max_reward`` end them.
    """

    def __init__(self, max_tries: int | None = None, time_limits: float | None = None,
                 max_reward: float | Sequence[float] = math.inf,
                 time_limits_per_job: float | None = None) -> None:
        self.max_tries = max_tries
        self.time_limits = time_limits
        self.max_reward = max_reward
        self.time_limits_per_job = time_limits_per_job
        self._start = time.time()

    def before_run(self, scheduler: SchedulerView) -> None:
        # A resumed task's earlier attempts count towards time_limits.
        self._start = time.time() - scheduler.elapsed_before

    def before_iter(self, scheduler: SchedulerView) -> None:
        if self.max_tries is not None and scheduler.num_launched >= self.max_tries:
            scheduler.request_stop(f"max_tries={self.max_tries} reached")
        self.check(scheduler)

    def check(self, scheduler: SchedulerView) -> None:
        if self.time_limits is not None and time.time() - self._start >= self.time_limits:
            scheduler.request_stop(f"time_limits={self.time_limits:g}s reached", kill_running=True)
        if not isinstance(self.max_reward, (int, float)):
            self._check_targets(scheduler, tuple(self.max_reward))
            return
        best = scheduler.best_reward
        if best is not None and math.isfinite(self.max_reward):
            if not is_better(self.max_reward, best, scheduler.optimize_mode):  # best is as good
                scheduler.request_stop(f"max_reward={self.max_reward:g} reached", kill_running=True)

    def _check_targets(self, scheduler: SchedulerView, targets: tuple[float, ...]) -> None:
        """One target per objective: stop once a job on the front reaches every one (a job that
        reaches them all is on the front, or dominated by a front job that does too)."""
        modes = scheduler.objective_modes
        for name, values in scheduler.pareto_front.items():
            if all(not is_better(t, v, m) for t, v, m in zip(targets, values, modes)):
                scheduler.request_stop(f"max_reward={list(targets)} reached by {name}", kill_running=True)
                return

    def seconds_left(self) -> float | None:
        """Seconds until ``time_limits`` runs out (None without a limit)."""
        if self.time_limits is None:
            return None
        return max(0.0, self._start + self.time_limits - time.time())


def build_stop_criterion(cfg: dict[str, Any]) -> BaseStopCriterion:
    """Build from ``{type: Name, **kwargs}``; without ``type`` the built-in StopCriterion, whose
    values are read as in ``search_config.yaml`` (``time_limits: 1`` is an hour, ``'30m'``,
    ``max_reward: inf``). A ConfigError names the key of a value it cannot read."""
    cfg = dict(cfg)
    if cfg.get("type") in (None, "StopCriterion"):
        stop = parse_stop_criterion(cfg)
        return StopCriterion(stop.max_tries, stop.time_limits, stop.max_reward, stop.time_limits_per_job)
    return STOP_CRITERIONS.build(cfg)
