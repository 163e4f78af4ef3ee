"""The assessor contract (manual 5.4): judge a running job from its reward curve.

``assess_job(job_id, history)`` gets the job's ``reward_attribute`` history as a list of
``{'iteration': int, 'value': float, 'created': ms}`` and returns ``AssessResult.Good`` (go on) or
``AssessResult.Bad`` (stop it early: status EARLY_STOPPED). ``job_end(job_id)`` is called when a
job ends, with ``success=True`` when it FINISHED.
"""
from __future__ import annotations

import enum
import inspect
import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, Collection, Protocol, Sequence, runtime_checkable

from gml_ray.plugins.registry import Registry
from gml_ray.vocab import OptimizeMode

ASSESSORS = Registry("assessor", locations=["gml_ray.assessors"])
"""``scheduler.assessor.type`` in a config names a class registered here."""


class AssessResult(enum.Enum):
    """An assessor's verdict on a running job."""

    Good = True  # let it go on
    Bad = False  # stop it now: EARLY_STOPPED


@runtime_checkable
class Assessor(Protocol):
    """What the scheduler calls on an assessor. The manual's own example (5.4) subclasses
    nothing, so an assessor is anything with these two methods; :class:`BaseAssessor` is the
    usual start."""

    def assess_job(self, job_id: str, history: list[dict[str, Any]]) -> AssessResult | bool:
        """See :meth:`BaseAssessor.assess_job`."""

    def job_end(self, job_id: str, success: bool = True) -> None:
        """See :meth:`BaseAssessor.job_end`."""


class BaseAssessor(ABC):
    """Judges a running job from its reward curve (manual 5.4).

    ``optimize_mode`` comes from the assessor's own section, else from the searcher's. Both hooks
    run in the scheduler's loop: an assessor must answer fast (it holds up the scalars behind it).
    """

    def __init__(self, optimize_mode: str = OptimizeMode.MAXIMIZE) -> None:
        self.optimize_mode = OptimizeMode.parse(optimize_mode)

    @abstractmethod
    def assess_job(self, job_id: str, history: list[dict[str, Any]]) -> AssessResult:
        """Called after each batch of a running job's reports that holds a new reward value.

        ``history`` is the job's whole ``reward_attribute`` curve so far, oldest first, as
        ``{'iteration': step, 'value': float, 'created': ms}`` (finite values only). Returns
        ``AssessResult.Bad`` to stop the job now (EARLY_STOPPED), ``Good`` to let it go on. An
        exception counts as Good (logged in scheduler.log).
        """

    def job_end(self, job_id: str, success: bool = True) -> None:
        """Called once when a job ends, whatever its status; ``success`` is True when it FINISHED.
        An assessor written for GML may take ``job_end(job_id)`` only: it is called so."""
        return None  # an optional hook: most assessors keep no per-job state

    # ---- promotion: pause jobs at checkpoints, continue the best later (optional) ----------------

    promotes: bool = False
    """True for an assessor that pauses jobs instead of stopping them and later promotes the best
    (it then needs jobs that checkpoint). The engine calls the two hooks below only when it is."""

    def at_checkpoint(self, job_id: str, history: list[dict[str, Any]]) -> bool:
        """Called when a running job announced a checkpoint, with its reward history so far.
        True pauses the job there (PAUSED; it holds no resources until :meth:`promotion` names it)."""
        return False

    def resumed(self, job_id: str, history: list[dict[str, Any]], paused: bool) -> None:
        """Called on ``run --resume``, before any job runs, once per earlier job in launch order,
        with its reward history (its last attempt's); ``paused``: it waits for a promotion. An
        assessor rebuilds what it keeps across jobs (rung records) here; the default keeps nothing."""
        return None

    def promotion(self, paused: Collection[str]) -> str | None:
        """Called when a job slot is free, before the searcher is asked for a new config, with the
        names of the jobs paused now (stopped at their checkpoint, holding nothing): the one to
        continue from its checkpoint now, or None."""
        return None


_takes_success: dict[type, bool] = {}


def call_job_end(assessor: Assessor, job_id: str, success: bool) -> None:
    """``assessor.job_end(job_id, success)``, or ``job_end(job_id)`` for GML's one-argument form
    (decided once per class from its signature, so an error inside it is never retried)."""
    cls = type(assessor)
    if cls not in _takes_success:
        try:
            params = inspect.signature(assessor.job_end).parameters.values()
        except (TypeError, ValueError):
            params = []  # type: ignore[assignment]
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        _takes_success[cls] = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    if _takes_success[cls]:
        assessor.job_end(job_id, success)
    else:
        assessor.job_end(job_id)


def build_assessor(cfg: dict[str, Any]) -> Assessor:
    """Build an assessor from ``{type: Name, **kwargs}``."""
    return ASSESSORS.build(cfg)


def history_values(history: Sequence[dict[str, Any]]) -> list[float]:
    """The finite ``value`` entries of a manual-format history, in order (others are skipped)."""
    out = []
    for point in history:
        value = point.get("value") if isinstance(point, dict) else point
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out.append(value)
    return out


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int if it is an integer >= ``low``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
