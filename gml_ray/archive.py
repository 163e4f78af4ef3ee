"""Task archives: ``ctl export`` writes a task's rows and files to a .tar.gz; ``ctl import`` reads one.

An archive holds ``gml-task.json`` (format, task name, paths it was exported from), the rows of
the ``tasks``, ``jobs`` and ``scalars`` tables as JSON, and the task directory under ``files/``.
Import checks every member before writing anything: no absolute paths, no ``..``, only regular
files and directories, nothing outside those names.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from typing import Any

from .errors import UserError
from .store import RUNNING, Store, check_task_name

FORMAT = "gml-ray-task"
MANIFEST = "gml-task.json"
ROWS = "rows.json"
FILES = "files"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def export_task(store: Store, task: str, tar_path: str | None = None) -> str:
    """Write ``task`` to ``tar_path`` (default ``archive/<task>.<timestamp>.tar.gz``); returns it."""
    row = store.require_task(task)
    if tar_path is None:
        tar_path = os.path.join("archive", f"{task}.{time.strftime('%Y%m%d%H%M%S')}.tar.gz")
    os.makedirs(os.path.dirname(os.path.abspath(tar_path)), exist_ok=True)
    rows = store.dump_task(task)
    manifest = {"format": FORMAT, "version": 1, "task": task, "task_dir": row["task_dir"],
                "exported": time.time(), "skipped_links": []}
    task_dir = row["task_dir"]
    tmp = tar_path + ".part"
    with tarfile.open(tmp, "w:gz") as tar:
        _add_bytes(tar, ROWS, json.dumps(rows, default=str).encode())
        if task_dir and os.path.isdir(task_dir):
            for root, dirs, files in os.walk(task_dir):
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(root, name)
                    rel = os.path.relpath(path, task_dir)
                    if os.path.islink(path):
                        # Links (e.g. --symlinks data) point outside the task: not carried.
                        manifest["skipped_links"].append(rel)
                        continue
                    tar.add(path, arcname=f"{FILES}/{rel}", recursive=False)
                dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        _add_bytes(tar, MANIFEST, json.dumps(manifest).encode())
    os.replace(tmp, tar_path)
    return tar_path


def _check_members(tar: tarfile.TarFile) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate an archive; returns (manifest, rows). Raises UserError naming the first problem."""
    manifest = rows = None
    for m in tar.getmembers():
        name = m.name
        parts = name.split("/")
        if name.startswith("/") or os.path.isabs(name):
            raise UserError(f"refusing archive: member {name!r} has an absolute path")
        if ".." in parts:
            raise UserError(f"refusing archive: member {name!r} leaves the task (..)")
        if not (m.isfile() or m.isdir()):
            kind = "link" if (m.issym() or m.islnk()) else "device or special file"
            raise UserError(f"refusing archive: member {name!r} is a {kind}")
        if name == MANIFEST and m.isfile():
            manifest = json.load(tar.extractfile(m))  # type: ignore[arg-type]
        elif name == ROWS and m.isfile():
            rows = json.load(tar.extractfile(m))  # type: ignore[arg-type]
        elif parts[0] != FILES:
            raise UserError(f"refusing archive: member {name!r} is not part of a gml-ray task export")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(rows, dict):
        raise UserError("refusing archive: it is not a gml-ray task export (no gml-task.json/rows.json)")
    if not rows.get("tasks"):
        raise UserError("refusing archive: it holds no task row")
    return manifest, rows


def _rebase(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str) and old and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):]
    return value


def import_task(store: Store, tar_path: str, task: str | None = None, force: bool = False) -> str:
    """Import an exported task (renamed to ``task`` if given); returns the task's name."""
    if not os.path.isfile(tar_path):
        raise UserError(f"no such archive: {tar_path}")
    try:
        tar = tarfile.open(tar_path, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"cannot read {tar_path}: {exc}") from None
    with tar:
        manifest, rows = _check_members(tar)
        name = check_task_name(task or manifest["task"])
        existing = store.get_task(name)
        if existing is not None and not force:
            raise UserError(f"task {name!r} already exists: add --force to replace it, or --task NEW")
        if existing is not None and existing["status"] == RUNNING:
            raise UserError(f"task {name!r} is running: stop it before replacing it")
        old_dir = manifest.get("task_dir") or ""
        new_dir = os.path.join(store.work_dir, "tasks", name)
        for table in rows.values():
            for row in table:
                for key in ("task_dir", "code_dir", "job_dir", "config_path"):
                    if key in row:
                        row[key] = _rebase(row[key], old_dir, new_dir)
        # Files go to a fresh directory first; the old task is replaced only once all are written.
        staging = new_dir + ".import"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            for m in tar.getmembers():
                if not m.name.startswith(FILES + "/"):
                    continue
                dest = os.path.join(staging, m.name[len(FILES) + 1:])
                if m.isdir():
                    os.makedirs(dest, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with tar.extractfile(m) as src, open(dest, "wb") as out:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, out)
                    os.chmod(dest, m.mode & 0o755 | 0o600)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    store.load_task(name, rows, replace=existing is not None)
    if os.path.lexists(new_dir):
        shutil.rmtree(new_dir)
    os.replace(staging, new_dir)
    return name


def _add_summary(path: str, summary: dict) -> None:
    """Append ``summary`` to the YAML list in ``path`` (a file of one summary, as older versions
    wrote it, becomes the list's first entry); written whole, then renamed into place."""
    import yaml

    entries: list = []
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UserError(f"{path} is not a summary file gml-ray can add to ({type(exc).__name__}): "
                            f"give another --summary path") from None
        if isinstance(old, dict) and "task" in old:
            entries = [old]
        elif isinstance(old, list) and all(isinstance(e, dict) and "task" in e for e in old):
            entries = old
        elif old is not None:
            raise UserError(f"{path} holds something other than task summaries: give another --summary path")
    entries.append(summary)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(entries, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)


def remove_task(store: Store, task: str, summary_path: str = "summary.yaml") -> str:
    """Add the task's summary (its jobs' args, status, reward) to the list in ``summary_path``,
    then delete the task's rows and files. Returns the summary's path."""
    import yaml

    row = store.require_task(task)
    if row["status"] == RUNNING:
        raise UserError(f"task {task} is running: stop it first (`gml-ray ctl stop --task {task}`)")
    summary = {"task": {k: row[k] for k in ("name", "status", "reward_attribute", "optimize_mode",
                                            "config_path", "message")},
               "jobs": [{"name": j["name"], "status": j["status"], "args": j["arg_dict"],
                         "reward": j["reward"]} for j in store.jobs(task)]}
    summary["task"]["config"] = yaml.safe_load(row["config_yaml"] or "null")
    _add_summary(summary_path, summary)
    store.delete_task(task)
    if row["task_dir"] and os.path.isdir(row["task_dir"]):
        shutil.rmtree(row["task_dir"])
    return summary_path
