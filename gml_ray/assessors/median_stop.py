"""MedianStopAssessor: stop a job whose best value so far is worse than the median of the finished
jobs' running averages at the same step (NNI's Medianstop rule).

At step S (the job's S-th reported value): Good while S < ``start_step`` or while no FINISHED job
reported S values; else, for maximize, Bad when the job's best value so far is below the lower
median of the finished jobs' averages of their first S values (for minimize: above the upper
median). Only jobs that FINISHED count: an EARLY_STOPPED, KILLED or ERROR job's curve is not a
reference (``job_end(job_id, success=False)``).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from gml_ray.optimize import sign
from gml_ray.plugins.assessor import ASSESSORS, AssessResult, BaseAssessor, check_int, history_values
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.assessor")


@ASSESSORS.register_module()
class MedianStopAssessor(BaseAssessor):
    """Median stopping rule: ``MedianStopAssessor(optimize_mode='maximize', start_step=0)``.

    Keeps, per running job, the running averages of its curve (rebuilt from each history it is
    given), and per FINISHED job those same averages: 8 bytes a step, nothing else.
    """

    def __init__(self, optimize_mode: str = OptimizeMode.MAXIMIZE, start_step: int = 0) -> None:
        super().__init__(optimize_mode)
        self.start_step = check_int("start_step", start_step, 0)
        self._running: dict[str, np.ndarray] = {}
        self._finished: dict[str, np.ndarray] = {}

    def assess_job(self, job_id: str, history: Sequence[dict[str, Any]]) -> AssessResult:
        values = history_values(history)
        step = len(values)
        if step == 0:
            return AssessResult.Good
        self._running[job_id] = np.cumsum(values) / np.arange(1, step + 1)
        if step < self.start_step:
            return AssessResult.Good
        s = sign(self.optimize_mode)  # compared as scores to maximise: s * value
        scores = sorted(s * float(avg[step - 1]) for avg in self._finished.values() if len(avg) >= step)
        if not scores:
            return AssessResult.Good
        # the lower median, as NNI: with an even count the job must beat the worse middle one
        median = scores[(len(scores) - 1) // 2]
        best = max(s * v for v in values)
        if best < median:
            log.info("%s at step %d: best %.6g is worse than the median %.6g of %d finished jobs",
                     job_id, step, s * best, s * median, len(scores))
            return AssessResult.Bad
        return AssessResult.Good

    def job_end(self, job_id: str, success: bool = True) -> None:
        """A job ended; if it FINISHED (``success``), its curve becomes a reference."""
        averages = self._running.pop(job_id, None)
        if success and averages is not None:
            self._finished[job_id] = averages
