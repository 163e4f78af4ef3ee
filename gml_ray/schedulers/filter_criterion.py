"""The manual's import path for filter criteria. A facade over :mod:`gml_ray.plugins.filter_criterion`."""
from gml_ray.plugins.filter_criterion import FILTER_CRITERIONS, BaseFilterCriterion, build_filter_criterion

__all__ = ["FILTER_CRITERIONS", "BaseFilterCriterion", "build_filter_criterion"]
