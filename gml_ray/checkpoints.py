"""The job side of checkpoints: where a job saves them, how it announces one, where it restores from.

A job writes a checkpoint (a file or a directory, any format) wherever it likes, then calls
:func:`checkpoint` with its path and step. gml-ray moves it, by one rename, to
``$GML_CHECKPOINT_DIR/ckpt-<step>`` and then announces it on the job's scalar channel: a
checkpoint exists under that name only once it was complete, and the scheduler restores a job only
from one it was told of, so a job killed while writing one never leaves a half checkpoint that is
later restored.

When a job starts again from a checkpoint (``run --resume``, a job whose node died),
:func:`get_checkpoint` is its path and :func:`restored_step` its step (the environment variables
``GML_RESTORE_FROM`` and ``GML_RESTORE_STEP`` hold the same); a fresh job gets None. Its scalars'
automatic steps continue after that step.

Run by hand, outside gml-ray, checkpoints go to ``./gml_checkpoints``.
"""
from __future__ import annotations

import errno
import operator
import os
import shutil
import sys
import time
import uuid

ENV_DIR = "GML_CHECKPOINT_DIR"  # the job's checkpoint directory (inside its job dir)
ENV_RESTORE = "GML_RESTORE_FROM"  # the checkpoint to restore from (unset on a fresh start)
ENV_RESTORE_STEP = "GML_RESTORE_STEP"  # its step
CHECKPOINTS_DIR = "checkpoints"  # a job's checkpoint directory, in its job dir
LOCAL_DIR = "gml_checkpoints"  # where checkpoints go outside gml-ray
PREFIX = "ckpt-"  # a complete checkpoint's name: ckpt-<step>
TEMP_PREFIX = ".tmp-"  # a checkpoint being copied in (never restored; swept later)
TRASH_PREFIX = ".trash-"  # a checkpoint being deleted (never restored; swept later)
RECORD_KEY = "ckpt"  # the announcement on the scalar channel: {"ckpt": path, "s": step, "b": bytes, "c": ms}


def checkpoint_dir() -> str:
    """This job's checkpoint directory (created if missing)."""
    path = os.environ.get(ENV_DIR) or os.path.abspath(LOCAL_DIR)
    os.makedirs(path, exist_ok=True)
    return path


def checkpoint_path(directory: str, step: int) -> str:
    """Where the checkpoint of ``step`` lives in ``directory``."""
    return os.path.join(directory, f"{PREFIX}{step}")


def get_checkpoint() -> str | None:
    """The checkpoint this job restarts from, or None on a fresh start."""
    path = os.environ.get(ENV_RESTORE)
    return path if path and os.path.exists(path) else None


def restored_step() -> int | None:
    """The step of :func:`get_checkpoint` (None on a fresh start): report steps after it."""
    step = os.environ.get(ENV_RESTORE_STEP)
    if not step or get_checkpoint() is None:
        return None
    try:
        return int(step)
    except ValueError:
        return None


def checkpoint(path: str, step: int) -> str | None:
    """Announce ``path`` (a file or directory the job has finished writing) as its checkpoint at
    ``step``; returns where it now lives (``ckpt-<step>`` in :func:`checkpoint_dir`).

    Its files are flushed to disk (fsync), then ``path`` is moved there by one rename (copied first to a temporary name when it is on another
    file system); a checkpoint of the same step is replaced. Raises ``FileNotFoundError`` when
    ``path`` does not exist and ``ValueError`` when ``step`` is not an integer. When the disk is
    full while it is copied in, nothing is announced, one warning line goes to stderr and None is
    returned: the job goes on, and a restart uses its previous checkpoint.
    """
    from gml_ray import reporting  # the scalar channel (it imports this module)

    try:
        if isinstance(step, bool):
            raise TypeError
        step = operator.index(step)  # an int, or a numpy or torch integer (never 2.5 → 2)
    except (TypeError, ValueError):
        raise ValueError(f"gml_ray.checkpoint: step must be an integer, got {step!r}") from None
    source = os.path.abspath(path)
    if not os.path.exists(source):
        raise FileNotFoundError(f"gml_ray.checkpoint: no such file or directory: {path}")
    directory = checkpoint_dir()
    final = checkpoint_path(directory, step)
    if source != final:
        try:
            _move_in(source, final, directory)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            print(f"gml_ray: checkpoint of step {step} not saved ({exc.strerror}: {directory}); "
                  f"a restart uses the previous one", file=sys.stderr, flush=True)
            return None
    fsync_dir(directory)
    reporting.emit([{RECORD_KEY: final, "s": step, "b": size_of(final), "c": int(time.time() * 1000)}])
    return final


def _move_in(source: str, final: str, directory: str) -> None:
    """Put ``source`` at ``final`` so that ``final`` is complete whenever it exists."""
    try:
        same_fs = os.stat(source).st_dev == os.stat(directory).st_dev
    except OSError:
        same_fs = False
    if not same_fs:  # copy next to its place first: the rename below is then atomic
        staged = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}")
        try:
            if os.path.isdir(source):
                shutil.copytree(source, staged, symlinks=True)
            else:
                shutil.copy2(source, staged)
        except BaseException:
            remove_tree(staged)  # no half copy left behind (a full disk, an interrupt)
            raise
        source = staged
    fsync_tree(source)  # its bytes on disk before the rename makes it the checkpoint
    if os.path.lexists(final):  # the same step again (a job that redid it): replace it
        trash = os.path.join(directory, f"{TRASH_PREFIX}{uuid.uuid4().hex[:8]}")
        os.rename(final, trash)
        os.rename(source, final)
        remove_tree(trash)
    else:
        os.rename(source, final)


def size_of(path: str) -> int:
    """Bytes of a file, or of every file under a directory (symlinks not followed)."""
    if not os.path.isdir(path) or os.path.islink(path):
        try:
            return os.lstat(path).st_size
        except OSError:
            return 0
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def remove_tree(path: str) -> None:
    """Delete a file or directory, whatever it holds; a missing one is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def fsync_tree(path: str) -> None:
    """Flush a file, or every file and directory under ``path``, to disk. Without it a crash of
    the machine soon after the rename can leave ``ckpt-<step>`` named but empty or short: file
    systems may write a rename before the data it names."""
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in files:
                _fsync_path(os.path.join(root, name))
            for name in dirs:
                _fsync_path(os.path.join(root, name))
    _fsync_path(path)


def _fsync_path(path: str) -> None:
    if os.path.islink(path):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    """Make the rename durable before the announcement goes out (a crash of the machine must
    not lose a checkpoint the store says exists)."""
    _fsync_path(directory)
