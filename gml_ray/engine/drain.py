"""Ended jobs waiting for their last messages.

A job's Ray task can end before every message it sent (its start, its reports) has come through
the channel. Its outcome says how many it sent (``sent``); the scheduler finishes the job once it
has received that many, or after a grace period (then with a warning: reports were lost).
"""
from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("gml_ray.scheduler")

DRAIN_GRACE_S = 30.0  # how long an ended job may wait for messages it sent before it ended
NO_COUNT_GRACE_S = 1.0  # the same for a job whose outcome has no count (its worker died)


class Drain:
    """Per running job: messages received; per ended job: when it ended."""

    def __init__(self) -> None:
        self._received: dict[int, int] = {}
        self._ended: dict[int, float] = {}

    def started(self, job_id: int) -> None:
        self._received[job_id] = 0

    def received(self, job_id: int) -> None:
        self._received[job_id] = self._received.get(job_id, 0) + 1

    def ended(self, job_id: int) -> None:
        """The job's outcome was read; its messages may still be on their way."""
        self._ended[job_id] = time.time()

    @property
    def waiting(self) -> bool:
        """Whether an ended job still waits for messages (the loop then wakes more often)."""
        return bool(self._ended)

    def done(self, running: dict[int, Any], now: float) -> list[int]:
        """The ended jobs to finish now (``running``: job id -> Job, holding every ended one)."""
        out = []
        for job_id, ended_at in list(self._ended.items()):
            job = running[job_id]
            name, count = job.name, (job.outcome or {}).get("sent")
            got = self._received.get(job_id, 0)
            if count is not None and got >= count:
                pass
            elif now - ended_at <= (DRAIN_GRACE_S if count is not None else NO_COUNT_GRACE_S):
                continue
            elif count is not None:
                log.warning("%s: %d of its %d messages came within %gs of its end; ending it "
                            "without the rest", name, got, count, DRAIN_GRACE_S)
            del self._ended[job_id]
            out.append(job_id)
        return out

    def forget(self, job_id: int) -> None:
        self._received.pop(job_id, None)
        self._ended.pop(job_id, None)
