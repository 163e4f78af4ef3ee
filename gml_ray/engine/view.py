"""The running loop as its stop criterion sees it: :class:`LoopView`, the ``scheduler`` argument."""
from __future__ import annotations

import time
from typing import Any, Protocol

from gml_ray.objectives import ParetoArchive
from gml_ray.plugins.stop_criterion import SchedulerView


class LoopState(Protocol):
    """The loop's state a view reads (:class:`~gml_ray.engine.loop.SchedulerCore` has it)."""

    task: str
    reward_attribute: str
    optimize_mode: str
    num_launched: int
    running: dict[int, Any]
    best_reward: float | None
    best_job: str | None
    elapsed_before: float
    start_time: float
    is_stop: bool
    archive: ParetoArchive

    def request_stop(self, reason: str, kill_running: bool = False) -> None: ...


class LoopView(SchedulerView):
    """A :class:`SchedulerView` read from the running loop (nothing copied)."""

    def __init__(self, core: LoopState) -> None:
        self._core = core

    @property
    def task(self) -> str:
        return self._core.task

    @property
    def reward_attribute(self) -> str:
        return self._core.reward_attribute

    @property
    def optimize_mode(self) -> str:
        return self._core.optimize_mode

    @property
    def objective_modes(self) -> list[str]:
        return [m.value for m in self._core.archive.spec.modes]

    @property
    def num_launched(self) -> int:
        return self._core.num_launched

    @property
    def running(self) -> int:
        return len(self._core.running)

    @property
    def best_reward(self) -> float | None:
        return self._core.best_reward

    @property
    def best_job(self) -> str | None:
        return self._core.best_job

    @property
    def pareto_front(self) -> dict[str, tuple[float, ...]]:
        return self._core.archive.front()  # type: ignore[return-value]  # keyed by job name

    @property
    def elapsed(self) -> float:
        return self._core.elapsed_before + time.time() - self._core.start_time

    @property
    def elapsed_before(self) -> float:
        return self._core.elapsed_before

    @property
    def is_stop(self) -> bool:
        return self._core.is_stop

    @is_stop.setter
    def is_stop(self, value: bool) -> None:
        self._core.is_stop = bool(value)

    def request_stop(self, reason: str, kill_running: bool = False) -> None:
        self._core.request_stop(reason, kill_running)
