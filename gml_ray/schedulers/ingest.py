"""Scalar ingestion: a job's reported records → store rows, its latest values, its reward.

The scheduler hands every batch of :class:`~gml_ray.schedulers.spec.ScalarRecord` to
:meth:`ScalarIngest.take`; rows are built once, in their store form, and written in bulk by
:meth:`ScalarIngest.save` (after the next jobs started: workers never wait for SQLite).
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Iterable

from ..optimize import best
from ..store import FLAG_OK, Store, classify

SAVE_EVERY = 20_000  # scalar rows kept in memory at most before they are written


class ScalarIngest:
    """Per-run ingestion state: unsaved rows, each running job's latest values, its reward
    history (for the assessor, when ``keep_history``) and the job-row fields not written yet."""

    def __init__(self, store: Store, task: str, reward_attribute: str, optimize_mode: str,
                 keep_history: bool) -> None:
        self.store, self.task = store, task
        self.reward_attribute = reward_attribute
        self._mode = optimize_mode
        self.keep_history = keep_history
        self.history: dict[int, list[dict]] = {}  # job id -> [{'iteration', 'value', 'created'}]
        self._latest: dict[int, dict[str, Any]] = {}  # job id -> {tag: last value}
        self._unsaved: list[tuple] = []  # scalar rows not written to the store yet
        self.row_updates: dict[int, dict[str, Any]] = {}  # job id -> job row fields to write
        self.ingested, self.seconds = 0, 0.0  # scalars taken, and the time it took

    def take(self, job_id: int, records: Iterable[dict], attempt: int) -> float | None:
        """Take a batch of a job's records; returns the best finite reward value in it (or None).

        The job's ``latest`` column is queued in :attr:`row_updates`; the caller adds the reward."""
        t0 = time.perf_counter()
        history = self.history.setdefault(job_id, []) if self.keep_history else None
        task, reward_attribute, append = self.task, self.reward_attribute, self._unsaved.append
        last: dict = {}
        rewards: list[float] = []
        n = 0
        value: float | None
        for rec in records:
            n += 1
            get = rec.get
            tag, raw = get("t"), get("v")
            if tag.__class__ is not str:  # a hand-written pipe line may carry anything as its tag
                tag = str(tag)[:200]
            # A finite float, the common case, without a call: inf - inf and nan - nan are nan.
            if type(raw) is float and raw - raw == 0.0:
                value, text, flag = raw, None, FLAG_OK
            else:
                value, text, flag = classify(raw)
            append((task, job_id, tag, get("s"), value, text, flag, get("c"), attempt))
            last[tag] = raw
            if tag == reward_attribute and flag == FLAG_OK:
                rewards.append(value)  # type: ignore[arg-type]
                if history is not None:
                    history.append({"iteration": get("s"), "value": value, "created": get("c")})
        latest = self._latest.setdefault(job_id, {})
        for tag, raw in last.items():
            latest[tag] = _json_safe(raw)
        self.row_updates.setdefault(job_id, {})["latest"] = json.dumps(latest)
        self.ingested += n
        self.seconds += time.perf_counter() - t0
        if len(self._unsaved) >= SAVE_EVERY:
            self.save()
        return best(rewards, self._mode) if rewards else None

    def pop_updates(self, job_id: int) -> dict[str, Any]:
        """The job-row fields queued for ``job_id`` (removed from the queue)."""
        return self.row_updates.pop(job_id, {})

    def forget(self, job_id: int) -> None:
        """Drop a job's in-memory state (it ended, or runs again from scratch)."""
        self.history.pop(job_id, None)
        self._latest.pop(job_id, None)
        self.row_updates.pop(job_id, None)

    def save(self) -> None:
        """Write the unsaved scalar rows."""
        if self._unsaved:
            t0 = time.perf_counter()
            rows, self._unsaved = self._unsaved, []
            self.store.insert_scalar_rows(rows)
            self.seconds += time.perf_counter() - t0


def _json_safe(value: Any) -> Any:
    """A reported value for the ``latest`` JSON column (NaN and inf as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
