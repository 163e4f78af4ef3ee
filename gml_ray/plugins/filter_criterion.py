"""The filter criterion contract (manual 5.2): drop a config before its job is launched.

``filter(job)`` gets the job the searcher's config became, not yet started, and returns True to
drop it. A dropped config is not launched, leaves nothing in the store and does not count towards
``max_tries``; the searcher is told it failed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from gml_ray.plugins.registry import Registry

FILTER_CRITERIONS = Registry("filter criterion")
"""``scheduler.filter_criterion.type`` in a config names a class registered here."""


class ProposedJob(Protocol):
    """What a filter criterion may read of a job that is not started yet."""

    @property
    def name(self) -> str:
        """``job_0007``."""

    @property
    def arg_dict(self) -> dict[str, Any]:
        """The manual's flat arg_dict: ``{'lr': 0.1, 'config(epochs)': 4}``."""

    @property
    def config(self) -> dict[str, Any] | None:
        """The searcher's config, nested as the search space is."""

    @property
    def command(self) -> str | None:
        """The rendered command (None for a function task)."""


class BaseFilterCriterion(ABC):
    """Decides which proposed jobs are not worth launching."""

    @abstractmethod
    def filter(self, job: ProposedJob) -> bool:
        """Called once per proposed config, in the scheduler's loop, before anything of the job
        is written: True drops it. An exception ends the task (ERROR)."""


def build_filter_criterion(cfg: dict[str, Any]) -> BaseFilterCriterion:
    """Build a filter criterion from ``{type: Name, **kwargs}``."""
    return FILTER_CRITERIONS.build(cfg)
