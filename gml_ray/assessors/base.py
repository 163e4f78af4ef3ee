"""The assessor contract (manual 5.4): judge a running job from its reward curve.

``assess_job(job_id, history)`` gets the job's ``reward_attribute`` history as a list of
``{'iteration': int, 'value': float, 'created': ms}`` and returns ``AssessResult.Good`` (go on) or
``AssessResult.Bad`` (stop it early: status EARLY_STOPPED). ``job_end(job_id)`` is called when a
job ends, with ``success=True`` when it FINISHED.
"""
from __future__ import annotations

import enum
from typing import Any

from ..registry import Registry

ASSESSORS = Registry("assessor")


class AssessResult(enum.Enum):
    Good = True
    Bad = False


class BaseAssessor:
    """Judges nothing bad; subclasses override :meth:`assess_job` and :meth:`job_end`."""

    def __init__(self, optimize_mode: str = "maximize") -> None:
        self.optimize_mode = optimize_mode

    def assess_job(self, job_id: str, history: list[dict[str, Any]]) -> AssessResult:
        return AssessResult.Good

    def job_end(self, job_id: str, success: bool = True) -> None:
        pass


def build_assessor(cfg: dict[str, Any]) -> Any:
    """Build an assessor from ``{type: Name, **kwargs}``."""
    return ASSESSORS.build(cfg)
