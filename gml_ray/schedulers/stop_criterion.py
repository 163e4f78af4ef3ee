"""The manual's import path for stop criteria. A facade over :mod:`gml_ray.plugins.stop_criterion`."""
from gml_ray.plugins.stop_criterion import (
    STOP_CRITERIONS,
    BaseStopCriterion,
    StopCriterion,
    build_stop_criterion,
    get_current_time,
)

__all__ = ["STOP_CRITERIONS", "BaseStopCriterion", "StopCriterion", "build_stop_criterion", "get_current_time"]
