"""The scheduler's side of an assessor (manual 5.4): it judges running jobs as their rewards
arrive, and hears of every job's end. A failing assessor never ends the task: its error is
logged and the job counts as Good."""
from __future__ import annotations

import logging
from typing import Any

from gml_ray.plugins.assessor import AssessResult, call_job_end
from gml_ray.vocab import JobStatus

log = logging.getLogger("gml_ray.scheduler")


class AssessorCalls:
    """Calls ``assessor`` (a BaseAssessor, or None: then every call does nothing)."""

    def __init__(self, assessor: Any) -> None:
        self.assessor = assessor

    def judge(self, job: Any, history: list[dict]) -> None:
        """A running job reported a reward: kill it EARLY_STOPPED if the assessor says Bad.

        A job's last values may arrive with its outcome: the assessor still sees them (its
        statistics of finished jobs need them), but an ended job is not killed."""
        if self.assessor is None or job.kill_status is not None:
            return
        try:
            verdict = self.assessor.assess_job(job.name, list(history))
        except Exception:  # noqa: BLE001 - a failing assessor counts as Good, never ends the task
            log.exception("assessor failed on %s; treating it as Good", job.name)
            return
        if (verdict == AssessResult.Bad or verdict is False) and job.outcome is None:
            job.kill(JobStatus.EARLY_STOPPED, "stopped early by the assessor")

    def ended(self, job: Any, finished: bool) -> None:
        """A job ended (``finished``: with status FINISHED)."""
        if self.assessor is None:
            return
        try:
            call_job_end(self.assessor, job.name, finished)
        except Exception:  # noqa: BLE001
            log.exception("assessor job_end failed on %s", job.name)
