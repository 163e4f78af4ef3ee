"""The scheduler's side of checkpoints: record what jobs announce, pick where a job restarts
from, and delete what no job will use again.

A job announces a checkpoint (:mod:`gml_ray.checkpoints`) once it is complete under its final name;
the announcement is recorded in the store's ``checkpoints`` table. Only recorded checkpoints
are ever restored. Of each job, the newest ``keep`` are kept (and any a job still restarts
from); older ones, and anything in a job's checkpoint directory that was never announced, are
deleted. A deletion renames first and then removes in the background, so a checkpoint is either
whole under its name or gone, whenever the run is killed.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from gml_ray.checkpoints import (
    CHECKPOINTS_DIR,
    PREFIX,
    RECORD_KEY,
    TEMP_PREFIX,
    TRASH_PREFIX,
    checkpoint_path,
    fsync_dir,
    fsync_tree,
    remove_tree,
    size_of,
)
from gml_ray.engine.spec import job_name
from gml_ray.store.store import Store

log = logging.getLogger("gml_ray.scheduler")

def checkpoint_dir(job_dir: str) -> str:
    """Where a job's checkpoints go (``GML_CHECKPOINT_DIR``)."""
    return os.path.join(job_dir, CHECKPOINTS_DIR)


@dataclass(frozen=True)
class Restore:
    """Where a job restarts from: a recorded checkpoint and its step."""

    path: str
    step: int


def announcement(record: dict[str, Any]) -> tuple[str, int, int, int] | None:
    """(path, step, bytes, created ms) of a checkpoint announcement, or None if it is malformed
    (a hand-written pipe line): such a record is never restored."""
    path, step = record.get(RECORD_KEY), record.get("s")
    size, created = record.get("b", 0), record.get("c", 0)
    if not isinstance(path, str) or not path or isinstance(step, bool) or not isinstance(step, int):
        return None
    size = size if isinstance(size, int) and not isinstance(size, bool) else 0
    created = created if isinstance(created, int) and not isinstance(created, bool) else 0
    return path, step, size, created


class CheckpointKeeper:
    """A run's checkpoint bookkeeping for one task. ``keep``: checkpoints kept per job (>= 1)."""

    def __init__(self, store: Store, task: str, keep: int,
                 warn: Callable[[str], None] | None = None) -> None:
        self.store, self.task, self.keep = store, task, max(1, keep)
        self.warn = warn or (lambda text: log.warning("%s", text))
        self._pinned: dict[int, str] = {}  # job id -> the checkpoint its running attempt restarted from
        self._warned_outside: set[int] = set()

    # ---- while jobs run ------------------------------------------------------------------------

    def announced(self, job_id: int, attempt: int, job_dir: str, record: dict[str, Any]) -> Restore | None:
        """A job announced a checkpoint: record it, then delete the job's ones past ``keep``.
        Returns it, or None when it was not recorded (malformed, or outside the job's directory)."""
        parsed = announcement(record)
        if parsed is None:
            log.warning("%s: a malformed checkpoint announcement was ignored: %.200r", job_name(job_id), record)
            return None
        path, step, size, created = parsed
        if not _inside(path, checkpoint_dir(job_dir)):
            if job_id not in self._warned_outside:
                self._warned_outside.add(job_id)
                self.warn(f"{job_name(job_id)}: a checkpoint announced outside its checkpoint directory "
                          f"was ignored ({path})")
            return None
        self.store.add_checkpoint(self.task, job_id, attempt, step, path, size, created)
        self._prune(job_id)
        return Restore(path, step)

    def adopt(self, job_id: int, job_dir: str, source: Restore) -> Restore | None:
        """Give job ``job_id`` its own copy of another job's checkpoint (PBT's exploit), made
        now, so that the donor deleting its checkpoints later cannot take it away. Files are
        hard-linked where the file system allows (a checkpoint is never changed in place),
        copied otherwise. None, with one warning, when it cannot be made (the disk is full)."""
        directory = checkpoint_dir(job_dir)
        final = checkpoint_path(directory, source.step)
        staged = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}")
        try:
            os.makedirs(directory, exist_ok=True)
            if os.path.isdir(source.path):
                shutil.copytree(source.path, staged, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(source.path, staged)
            fsync_tree(staged)  # copied bytes on disk before the rename names them
            os.rename(staged, final)
            fsync_dir(directory)
        except OSError as exc:
            remove_tree(staged)
            self.warn(f"{job_name(job_id)}: could not copy the checkpoint {source.path} ({exc}): not started from it")
            return None
        self.store.add_checkpoint(self.task, job_id, 1, source.step, final, size_of(final), int(time.time() * 1000))
        return Restore(final, source.step)

    def _prune(self, job_id: int) -> None:
        rows = self.store.checkpoints(self.task, job_id)
        keep = {r["path"] for r in rows[-self.keep:]}
        if job_id in self._pinned:
            keep.add(self._pinned[job_id])
        for row in rows:
            if row["path"] not in keep:
                self.store.remove_checkpoint(self.task, job_id, row["path"])
                discard(row["path"])

    # ---- when a job (re)starts -------------------------------------------------------------------

    def restore_point(self, job_id: int, job_dir: str) -> Restore | None:
        """The newest recorded checkpoint of a job that still exists, or None (it starts from
        scratch). A recorded one that is gone or unreadable is forgotten, with one warning line."""
        missing: list[dict[str, Any]] = []
        found: Restore | None = None
        for row in reversed(self.store.checkpoints(self.task, job_id)):
            path = row["path"]
            if os.path.exists(path) and os.access(path, os.R_OK):
                found = Restore(path, int(row["step"]))
                break
            self.store.remove_checkpoint(self.task, job_id, path)
            missing.append(row)
        if missing:
            steps = ", ".join(str(r["step"]) for r in missing)
            start = f"its checkpoint at step {found.step}" if found else "scratch"
            self.warn(f"{job_name(job_id)}: its checkpoint{'s' if len(missing) > 1 else ''} at step {steps} "
                      f"{'are' if len(missing) > 1 else 'is'} missing or unreadable ({missing[0]['path']}): "
                      f"it starts from {start}")
        return found

    def starting(self, job_id: int, job_dir: str, restore: Restore | None) -> None:
        """A job's attempt starts (from ``restore``, or from scratch): clear what its checkpoint
        directory holds that was never announced, and keep ``restore`` until it is superseded."""
        if restore is not None:
            self._pinned[job_id] = restore.path
        else:
            self._pinned.pop(job_id, None)
        directory = checkpoint_dir(job_dir)
        try:
            names = os.listdir(directory)
        except OSError:
            return
        recorded = {r["path"] for r in self.store.checkpoints(self.task, job_id)}
        for name in names:
            path = os.path.join(directory, name)
            stray = name.startswith((TEMP_PREFIX, TRASH_PREFIX)) or (name.startswith(PREFIX) and path not in recorded)
            if stray:  # half-copied, half-deleted, or written but never announced: never restored
                discard(path)

    def newest_step(self, job_id: int) -> int | None:
        """The step of the newest checkpoint recorded for a job, or None if it has none."""
        rows = self.store.checkpoints(self.task, job_id)
        return int(rows[-1]["step"]) if rows else None

    def ended(self, job_id: int) -> None:
        """A job's attempt ended: what it restarted from is no longer pinned (``keep`` rules)."""
        if self._pinned.pop(job_id, None) is not None:
            self._prune(job_id)


def discard(path: str) -> None:
    """Delete a checkpoint: renamed away at once (never seen half-deleted under its name), then
    removed in the background (a large one takes a while; the run does not wait)."""
    if not os.path.lexists(path):
        return
    trash = os.path.join(os.path.dirname(path), f"{TRASH_PREFIX}{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)
    except OSError as exc:
        log.warning("could not delete the checkpoint %s: %s", path, exc)
        return
    threading.Thread(target=remove_tree, args=(trash,), daemon=True, name="gml-ckpt-rm").start()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _inside(path: str, directory: str) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(directory)
    return real == root or real.startswith(root + os.sep)
