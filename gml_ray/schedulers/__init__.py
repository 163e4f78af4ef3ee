"""The manual's import path for scheduling (``from gml.schedulers import NaiveScheduler``).

A facade: the scheduler lives in :mod:`gml_ray.engine`, the criteria's contracts in
:mod:`gml_ray.plugins`. The MuJoCo benchmark's ``MujocoScheduler`` is in :mod:`gml_ray.mujoco`.
"""
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

__all__ = ["NaiveScheduler", "build_stop_criterion", "build_filter_criterion", "STOP_CRITERIONS",
           "FILTER_CRITERIONS", "BaseStopCriterion", "BaseFilterCriterion", "StopCriterion", "get_current_time"]


def __getattr__(name: str) -> Any:
    # NaiveScheduler needs Ray; criteria plugins importing this package should not pay for it.
    if name == "NaiveScheduler":
        from gml_ray.engine.scheduler import NaiveScheduler
        return NaiveScheduler
    raise AttributeError(f"module 'gml_ray.schedulers' has no attribute {name!r}")
