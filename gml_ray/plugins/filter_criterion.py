"""Filter criteria: drop a config before its job is launched (manual 5.2).

``filter(job)`` gets the not-yet-started job (``job.arg_dict``, ``job.name``, ``job.command``) and
returns True to drop it. Dropped configs are not launched and do not count towards ``max_tries``.
"""
from __future__ import annotations

from typing import Any

from gml_ray.plugins.registry import Registry

FILTER_CRITERIONS = Registry("filter criterion")


class BaseFilterCriterion:
    """Keeps every job; subclasses override :meth:`filter`."""

    def filter(self, job: Any) -> bool:
        return False


def build_filter_criterion(cfg: dict[str, Any]) -> Any:
    """Build a filter criterion from ``{type: Name, **kwargs}``."""
    return FILTER_CRITERIONS.build(cfg)
