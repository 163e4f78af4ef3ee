"""Scheduling: the scheduler actor, Jobs, stop and filter criteria (the manual's names)."""
from __future__ import annotations

from typing import Any

from gml_ray.plugins.filter_criterion import FILTER_CRITERIONS, BaseFilterCriterion, build_filter_criterion
from gml_ray.plugins.stop_criterion import (
    STOP_CRITERIONS,
    BaseStopCriterion,
    StopCriterion,
    build_stop_criterion,
    get_current_time,
)

__all__ = ["NaiveScheduler", "MujocoScheduler", "build_stop_criterion", "build_filter_criterion", "STOP_CRITERIONS",
           "FILTER_CRITERIONS", "BaseStopCriterion", "BaseFilterCriterion", "StopCriterion", "get_current_time"]


def __getattr__(name: str) -> Any:
    # NaiveScheduler needs Ray; criteria plugins importing this package should not pay for it.
    if name in ("NaiveScheduler", "MujocoScheduler", "SchedulerActor", "SchedulerCore"):
        import gml_ray.engine.scheduler as naive
        return getattr(naive, name)
    raise AttributeError(name)
