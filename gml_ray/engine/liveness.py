"""A run's liveness, from its driver: the task's heartbeat, written by a thread of its own whatever
the search loop is doing, and a watch on the store file (deleted or replaced during the run).

``ctl`` commands read the heartbeat (with the driver's pid on its host, see
:func:`~gml_ray.store.schema.run_alive`) to tell a live run from a dead one.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time

from gml_ray.store.backlog import SPILL_DIR
from gml_ray.store.schema import HEARTBEAT_S
from gml_ray.store.store import Store


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a file, None if it is gone: a replaced file has another inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class RunWatch:
    """Beats for ``task`` every HEARTBEAT_S from a daemon thread, on a connection of its own that
    waits for the write lock a moment only (a loop that holds the lock, its searcher thinking
    inside a round, beats itself in the commit that releases it). ``lost`` says why the store
    the run opened is gone, once it is: the file was deleted or replaced, or the task's row is."""

    def __init__(self, store: Store, task: str) -> None:
        self.path, self.work_dir, self.task = store.path, store.work_dir, task
        self.lost: str | None = None
        self._identity = file_identity(store.path)
        self._stopped = threading.Event()
        beats = Store(store.work_dir, busy_timeout=1.0)
        threading.Thread(target=self._run, args=(beats,), name="gml-heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self, beats: Store) -> None:
        try:
            self._beat(beats)
        finally:
            beats.close()

    def _beat(self, beats: Store) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            if file_identity(self.path) != self._identity:
                self.lost = (f"the store {self.path} was deleted or replaced during the run"
                             if os.path.exists(os.path.dirname(self.path))
                             else f"the work dir {self.work_dir} was deleted during the run")
                return
            try:
                if not beats.heartbeat(self.task):
                    self.lost = (f"task {self.task} was removed from the store {self.path} during "
                                 f"the run (the store replaced?)")
                    return
            except sqlite3.Error:  # locked, or a full disk: the run's loop deals with that
                continue


def save_lost_store(store: Store, task: str) -> str:
    """The whole store as ``store``'s connection still sees it (a deleted file lives on while it
    is open) copied to ``<work_dir>/spill/``: nothing the run or other tasks wrote is lost."""
    folder = os.path.join(store.work_dir, SPILL_DIR)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"gml.db.recovered-{task}-{time.strftime('%Y%m%d_%H%M%S')}")
    store.copy_to(path)
    return path
