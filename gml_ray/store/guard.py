"""The run's side of a store that cannot be written (disk full, I/O error, a held lock).

While the store's backlog holds writes, :class:`StoreGuard` retries them with backoff and the
loop launches no job; at the run's end it tries a while longer, then spills the backlog to a file
beside the store that ``run --resume`` loads. Nothing a job reported is lost either way.
"""
from __future__ import annotations

import logging
import os
import time

from gml_ray.store.backlog import release_room, reserve_room, spill
from gml_ray.store.store import Store

log = logging.getLogger("gml_ray.scheduler")

RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # waits between tries of failed store writes
END_WAIT_S = float(os.environ.get("GML_STORE_END_WAIT_S", "30"))  # at the end: try this long, then spill
# With no job running, a run whose store cannot be written waits this long for room, then ends.
IDLE_MAX_S = float(os.environ.get("GML_STORE_IDLE_MAX_S", "300"))


class StoreGuard:
    """Retries, backoff and the spill file of one run's store (``store.defer_failed_writes``)."""

    def __init__(self, store: Store, work_dir: str, task: str) -> None:
        self.store, self.work_dir, self.task = store, work_dir, task
        store.defer_failed_writes = True  # a full disk pauses the run, it does not end it
        self._tries, self.retry_at = 0, 0.0
        self.spilled: str | None = None  # where unwritten records went when the run ended

    @property
    def failing(self) -> bool:
        return self.store.backlog.failing

    def start(self) -> None:
        """Called when the run starts: hold room beside the store for a spill file."""
        reserve_room(self.work_dir, self.task)

    def retry(self, idle: bool = False, force: bool = False) -> str | None:
        """Try the waiting writes again when their backoff is over (``force``: now). Returns why
        the run should end: ``idle`` (no job running) for longer than :data:`IDLE_MAX_S`."""
        backlog = self.store.backlog
        if not backlog.failing:
            return None
        if time.time() < self.retry_at and not force:
            if idle and time.time() - (backlog.since or time.time()) > IDLE_MAX_S:
                return f"the store could not be written for {IDLE_MAX_S:g}s ({backlog.error})"
            return None
        n = backlog.records()
        if self.store.retry_backlog():
            if self._tries:
                log.warning("store writes work again: %d records written", n)
            self._tries = 0
            return None
        if not self._tries:
            log.warning("store writes fail (%s): %d records kept in memory; no new jobs until they "
                        "are written; retrying", backlog.error, n)
        self.retry_at = time.time() + RETRY_S[min(self._tries, len(RETRY_S) - 1)]
        self._tries += 1
        return None

    def finish(self) -> None:
        """The run ends: write what waits, trying for :data:`END_WAIT_S`; then spill it."""
        deadline = time.time() + END_WAIT_S
        while self.failing and time.time() < deadline:
            self.retry(force=True)
            if self.failing:
                time.sleep(min(1.0, max(0.0, deadline - time.time())))
        if not self.failing:
            release_room(self.work_dir, self.task)
            return
        backlog = self.store.backlog
        n, error = backlog.records(), backlog.error
        self.spilled = spill(self.work_dir, self.task, backlog.pending)
        backlog.cleared()
        log.error("store writes still fail (%s): %d records saved to %s; `run --resume` loads them",
                  error, n, self.spilled)

    def problem(self) -> str | None:
        """One line while store writes fail (read from another thread: the driver's)."""
        backlog = self.store.backlog
        if not backlog.failing:
            return None
        return (f"store writes fail ({backlog.error}): {backlog.records()} records kept in memory, "
                f"no new jobs until they are written; retrying")
