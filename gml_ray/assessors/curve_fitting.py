"""CurveFittingAssessor: stop a job whose learning curve, extrapolated to ``epoch_num``, will not
come near the best finished job (Domhan et al., IJCAI 2015; NNI's CurvefittingAssessor).

For rising metrics only (accuracy, not loss): ``optimize_mode: minimize`` is a config error.
A job is judged once it has ``start_step`` values and a FINISHED job exists, then again every
``gap`` new values while it has fewer than ``epoch_num``. The curve models' prediction at step
``epoch_num`` (see :mod:`.curve_models`) is compared with the best final value of the finished
jobs: at or below ``threshold`` x best (``best - (1 - threshold) * |best|``, the same for a
positive best, sensible for a negative one) the job is Bad. No prediction (too few points, or
the models disagree) is Good: the job runs on and is judged again later.

Differences from NNI, on purpose: "best" is the last value of each FINISHED job's own history
(NNI takes whichever history it assessed last, possibly another job's); a fit that fails leaves
its model out of that prediction (NNI reuses module-level parameters from an earlier fit).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from gml_ray.assessors import curve_models
from gml_ray.plugins.assessor import ASSESSORS, AssessResult, BaseAssessor, check_int, history_values
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.assessor")


@ASSESSORS.register_module()
class CurveFittingAssessor(BaseAssessor):
    """``CurveFittingAssessor(epoch_num, start_step=6, threshold=0.95, gap=1)``.

    ``epoch_num`` is the number of values a full job reports (the step to predict). Keeps per
    running job its last value and when it was last judged, and one number overall (the best
    finished result): a constant amount of memory per job.
    """

    def __init__(self, epoch_num: int | None = None, start_step: int = 6, threshold: float = 0.95,
                 gap: int = 1, optimize_mode: str = OptimizeMode.MAXIMIZE) -> None:
        if OptimizeMode.parse(optimize_mode) is not OptimizeMode.MAXIMIZE:
            raise ValueError("optimize_mode: minimize is not supported: it predicts rising curves "
                             "(maximize, e.g. accuracy); use MedianStopAssessor to minimize")
        super().__init__(optimize_mode)
        if epoch_num is None:
            raise ValueError("epoch_num is required: the number of values a full job reports")
        self.epoch_num = check_int("epoch_num", epoch_num, 1)
        self.start_step = check_int("start_step", start_step, 0)
        self.gap = check_int("gap", gap, 1)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
            raise ValueError(f"threshold must be a number > 0, got {threshold!r}")
        self.threshold = float(threshold)
        self.best: float | None = None  # the best final value of a FINISHED job
        self._last: dict[str, float] = {}
        self._judged_at: dict[str, int] = {}

    def assess_job(self, job_id: str, history: Sequence[dict[str, Any]]) -> AssessResult:
        values = history_values(history)
        if values:
            self._last[job_id] = values[-1]
        step = len(values)
        if self.best is None or step < self.start_step or step >= self.epoch_num:
            return AssessResult.Good
        judged = self._judged_at.get(job_id)
        if judged is not None and step - judged < self.gap:
            return AssessResult.Good
        self._judged_at[job_id] = step
        predicted = curve_models.predict_final(values, self.epoch_num)
        if predicted is None:
            log.debug("%s at step %d: no prediction yet", job_id, step)
            return AssessResult.Good
        standard = self.best - (1.0 - self.threshold) * abs(self.best)
        if predicted > standard:
            return AssessResult.Good
        log.info("%s at step %d: predicted %.6g at step %d, not above %.6g (best %.6g x %g)",
                 job_id, step, predicted, self.epoch_num, standard, self.best, self.threshold)
        return AssessResult.Bad

    def job_end(self, job_id: str, success: bool = True) -> None:
        """A job ended; if it FINISHED (``success``), its last value may become the best."""
        last = self._last.pop(job_id, None)
        self._judged_at.pop(job_id, None)
        if success and last is not None and (self.best is None or last > self.best):
            self.best = last
