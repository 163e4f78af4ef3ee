"""Writes a store could not make (disk full, I/O error, read-only, locked), kept until it can.

The scheduler's store keeps every write of a transaction in a journal. When a write or the
commit fails for such a reason, the transaction is rolled back and its writes, and every write
after them, go to the backlog instead of the database, so a run never loses what a job reported
and never stops in the middle of a round. :meth:`WriteBacklog.retry` replays the backlog in one
transaction; a run that must end with a backlog :func:`spill`\\ s it to a file beside the store,
which ``run --resume`` replays (:func:`load_spills`).
"""
from __future__ import annotations

import glob
import json
import os
import sqlite3
import tempfile
import time
from typing import Any

# SQLite's words for a write that may work later (a disk that fills, a lock that is held).
_TRANSIENT = ("disk is full", "disk i/o error", "readonly database", "database is locked",
              "unable to open database file", "no space left")
SPILL_DIR = "spill"  # under the work dir
RESERVE_BYTES = 4 * 2 ** 20  # held by a run beside the store, freed to make room for its spill

Write = tuple[str, Any, bool]  # (sql, params, many): many=True is an executemany of scalar rows


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a write SQLite could make later (not a mistake in the statement)."""
    return isinstance(exc, sqlite3.OperationalError) and any(t in str(exc).lower() for t in _TRANSIENT)


class WriteBacklog:
    """The journal of the open transaction and the writes not made yet."""

    def __init__(self) -> None:
        self.journal: list[Write] = []  # writes of the open transaction (made, not committed)
        self.pending: list[Write] = []  # writes not made: the backlog
        self.error: str | None = None  # why the backlog exists
        self.since: float | None = None  # when it began

    @property
    def failing(self) -> bool:
        return bool(self.pending) or self.error is not None

    def fail(self, exc: BaseException, write: Write | None) -> None:
        """The open transaction was lost: its writes (and ``write``) wait in the backlog."""
        self.pending.extend(self.journal)
        if write is not None:
            self.pending.append(write)
        self.journal = []
        self.error = " ".join(str(exc).split())
        if self.since is None:
            self.since = time.time()

    def records(self) -> int:
        """How many rows the backlog holds (scalar rows counted one by one)."""
        return sum(len(p) if many else 1 for _, p, many in self.pending)

    def cleared(self) -> None:
        self.pending, self.error, self.since = [], None, None


def spill(work_dir: str, task: str, writes: list[Write]) -> str:
    """Write ``writes`` to ``<work_dir>/spill/<task>.<time>.json`` (freeing the run's reserve
    first); where even that fails, to the temp dir. Returns the path."""
    folder = os.path.join(work_dir, SPILL_DIR)
    reserve = os.path.join(folder, f"{task}.reserve")
    text = json.dumps([[sql, params, many] for sql, params, many in writes])
    name = f"{task}.spill-{time.strftime('%Y%m%d_%H%M%S')}-{os.getpid()}.json"
    if os.path.exists(reserve):
        os.remove(reserve)
    for where in (folder, tempfile.gettempdir()):
        path = os.path.join(where, name)
        try:
            with open(path + ".part", "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(path + ".part", path)
            return path
        except OSError:
            try:
                os.remove(path + ".part")
            except OSError:
                pass
    raise OSError(f"no room anywhere for the {len(writes)} unwritten store writes of task {task}")


def reserve_room(work_dir: str, task: str) -> None:
    """Hold :data:`RESERVE_BYTES` beside the store, so that a run on a disk that fills up can
    still write its spill file (best effort: a disk already full gets no reserve)."""
    folder = os.path.join(work_dir, SPILL_DIR)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{task}.reserve"), "wb") as f:
            f.write(b"\0" * RESERVE_BYTES)
    except OSError:
        pass


def release_room(work_dir: str, task: str) -> None:
    try:
        os.remove(os.path.join(work_dir, SPILL_DIR, f"{task}.reserve"))
    except OSError:
        pass


def load_spills(work_dir: str, task: str) -> list[tuple[str, list[Write]]]:
    """The spill files of ``task`` beside the store, oldest first, with their writes."""
    out = []
    for path in sorted(glob.glob(os.path.join(work_dir, SPILL_DIR, f"{glob.escape(task)}.spill-*.json"))):
        with open(path, encoding="utf-8") as f:
            out.append((path, [(sql, params, bool(many)) for sql, params, many in json.load(f)]))
    return out
