"""Task archives: ``ctl export`` writes a task's rows and files to a .tar.gz; ``ctl import`` reads one.

An archive holds ``gml-task.json`` (format, task name, paths it was exported from), the rows of
the ``tasks``, ``jobs``, ``scalars`` (and, when asked, ``checkpoints``) tables as JSON, and the task
directory under ``files/`` (its jobs' ``checkpoints/`` directories only when asked).
Import checks every member before writing anything: no absolute paths, no ``..``, only regular
files and directories, nothing outside those names, no more than ``max_bytes`` unpacked and
``max_members`` members (a gzip bomb stops at the cap, before a byte is written); and every path
the rows hold (``task_dir``, ``code_dir``, job dirs) must lie in the task's new directory.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import sqlite3
import tarfile
import time
import zlib
from typing import Any

from gml_ray.checkpoints import CHECKPOINTS_DIR
from gml_ray.errors import UserError
from gml_ray.objectives import front_summary, job_outcome, task_front
from gml_ray.store.schema import check_task_name
from gml_ray.store.store import Store
from gml_ray.vocab import TaskStatus

FORMAT = "gml-ray-task"
MANIFEST = "gml-task.json"
ROWS = "rows.json"
FILES = "files"

MAX_BYTES = 8 << 30  # unpacked bytes an import accepts by default (`ctl import --max-bytes`)
MAX_MEMBERS = 200_000  # members an import accepts by default (`ctl import --max-members`)
# What a damaged .tar.gz raises while it is read: truncated gzip (EOFError), bad data (zlib.error,
# gzip.BadGzipFile is an OSError), bad headers (tarfile.TarError).
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def _named(exc: OSError, path: str) -> OSError:
    """``exc`` with ``path`` as its file name if it has none (a write to a full disk has none)."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), path)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def export_task(store: Store, task: str, tar_path: str | None = None, checkpoints: bool = False) -> str:
    """Write ``task`` to ``tar_path`` (default ``archive/<task>.<timestamp>.tar.gz``); returns it.
    The files are those of ``<work dir>/tasks/<task>``, whatever directory the task's row names;
    its jobs' checkpoints (and their rows) only with ``checkpoints``."""
    row = store.require_task(task)
    if tar_path is None:
        tar_path = os.path.join("archive", f"{task}.{time.strftime('%Y%m%d%H%M%S')}.tar.gz")
    os.makedirs(os.path.dirname(os.path.abspath(tar_path)), exist_ok=True)
    rows = store.dump_task(task)
    if not checkpoints:
        rows["checkpoints"] = []
    manifest = {"format": FORMAT, "version": 1, "task": task, "task_dir": row["task_dir"],
                "exported": time.time(), "skipped_links": []}
    task_dir = os.path.join(store.work_dir, "tasks", check_task_name(task))
    tmp = tar_path + ".part"
    try:
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
                        if not checkpoints and _is_checkpoints(rel):
                            continue
                        tar.add(path, arcname=f"{FILES}/{rel}", recursive=False)
                    dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))
                               and (checkpoints or not _is_checkpoints(os.path.relpath(os.path.join(root, d), task_dir)))]
            _add_bytes(tar, MANIFEST, json.dumps(manifest).encode())
    except OSError as exc:  # a full disk, say: no half archive left, and the file named
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _named(exc, tmp) from None
    os.replace(tmp, tar_path)
    return tar_path


def _is_checkpoints(rel: str) -> bool:
    """Whether a path in a task's directory is a job's checkpoint directory (``jobs/<job>/checkpoints``)."""
    parts = rel.split(os.sep)
    return len(parts) == 3 and parts[0] == "jobs" and parts[2] == CHECKPOINTS_DIR


def parse_size(text: str | int) -> int:
    """Bytes from ``123``, ``500M``, ``8G`` (K, M, G, T are powers of 1024); UserError otherwise."""
    raw = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(raw[-1:], 1)
    try:
        value = float(raw[:-1] if mult > 1 else raw) * mult
    except ValueError:
        value = -1
    if not value > 0:
        raise UserError(f"--max-bytes {text!r}: give a size such as 500M, 8G or a number of bytes")
    return int(value)


def _name(m: tarfile.TarInfo) -> str:
    """A member's name without the ``./`` that ``tar czf A.tar.gz .`` puts in front."""
    name = m.name
    while name.startswith("./"):
        name = name[2:]
    return name or "."


def _load_json(tar: tarfile.TarFile, m: tarfile.TarInfo) -> Any:
    try:
        return json.load(tar.extractfile(m))  # type: ignore[arg-type]
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UserError(f"refusing archive: {m.name} is not valid JSON ({exc})") from None


def _check_members(tar: tarfile.TarFile, max_bytes: int = MAX_BYTES,
                   max_members: int = MAX_MEMBERS) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate an archive; returns (manifest, rows). Raises UserError naming the first problem.

    Members are read one by one and the caps are checked from each header before its data is
    read, so an archive over them costs at most the cap in decompression and nothing on disk."""
    manifest = rows = None
    total = count = 0
    kinds: dict[str, str] = {}  # member name -> "file" | "dir": clashes are refused
    for m in tar:
        name = _name(m)
        parts = name.split("/")
        count += 1
        total += max(m.size, 0)
        if count > max_members:
            raise UserError(f"refusing archive: more than {max_members} members (a bomb? "
                            f"--max-members N raises the cap)")
        if total > max_bytes:
            raise UserError(f"refusing archive: more than {format_bytes(max_bytes)} unpacked at member "
                            f"{name!r} (a gzip bomb? --max-bytes SIZE raises the cap)")
        if name.startswith("/") or os.path.isabs(name):
            raise UserError(f"refusing archive: member {name!r} has an absolute path")
        if ".." in parts:
            raise UserError(f"refusing archive: member {name!r} leaves the task (..)")
        if not (m.isfile() or m.isdir()):
            kind = "link" if (m.issym() or m.islnk()) else "device or special file"
            raise UserError(f"refusing archive: member {name!r} is a {kind}")
        if name == "." and m.isdir():
            continue  # the root of an archive re-made with `tar czf A.tar.gz .`
        if name == MANIFEST and m.isfile():
            manifest = _load_json(tar, m)
        elif name == ROWS and m.isfile():
            rows = _load_json(tar, m)
        elif parts[0] != FILES:
            raise UserError(f"refusing archive: member {name!r} is not part of a gml-ray task export")
        else:
            _claim(kinds, name, "dir" if m.isdir() else "file")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(rows, dict):
        raise UserError("refusing archive: it is not a gml-ray task export (no gml-task.json/rows.json)")
    _check_rows_shape(rows)
    return manifest, rows


def _claim(kinds: dict[str, str], name: str, kind: str) -> None:
    """Record member ``name`` of ``kind`` ("file" or "dir") and its parents (directories) in
    ``kinds``; UserError if one path would be both a file and a directory."""
    key = name.rstrip("/")
    if kinds.get(key, kind) != kind:
        raise UserError(f"refusing archive: member {name!r} clashes with another member: "
                        f"{key!r} is both a file and a directory")
    kinds[key] = kind
    parent = key
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        have = kinds.get(parent)
        if have == "file":
            raise UserError(f"refusing archive: member {name!r} clashes with member {parent!r} "
                            f"(a file, not a directory)")
        if have == "dir":
            break
        kinds[parent] = "dir"


def format_bytes(n: int) -> str:
    """``1.5 GiB``: a size for people."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def _check_rows_shape(rows: dict[str, Any]) -> None:
    """rows.json is ``{table: [row dict, ...]}`` with exactly one task row."""
    for table, body in rows.items():
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            raise UserError(f"refusing archive: {ROWS}: {table!r} must be a list of rows (objects)")
    if len(rows.get("tasks") or []) != 1:
        raise UserError(f"refusing archive: {ROWS}: it must hold exactly one task row, "
                        f"not {len(rows.get('tasks') or [])}")


def _inside(path: str, root: str) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path == root or path.startswith(root + os.sep)


def _check_paths(rows: dict[str, Any], new_dir: str) -> None:
    """Every stored path the rows hold must lie in the task's new directory ``new_dir`` (after
    rebasing): ``task_dir`` is it, job dirs are in it, ``code_dir`` is in it (a snapshot) or is
    the task's own ``source_dir`` (``--no-snapshot``). Refuses the archive otherwise."""
    def bad(where: str, key: str, value: Any, rule: str) -> UserError:
        return UserError(f"refusing archive: {ROWS}: {where}.{key} = {value!r} {rule} "
                         f"(the task's directory is {new_dir})")

    for i, row in enumerate(rows["tasks"]):
        for key in ("config_path", "source_dir"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise bad(f"tasks[{i}]", key, row[key], "is not a path")
        task_dir = row.get("task_dir")
        if task_dir is not None and (not isinstance(task_dir, str)
                                     or os.path.normpath(task_dir) != os.path.normpath(new_dir)):
            raise bad(f"tasks[{i}]", "task_dir", task_dir, "is not the task's directory")
        code_dir = row.get("code_dir")
        if code_dir is not None and not (isinstance(code_dir, str) and os.path.isabs(code_dir) and (
                _inside(code_dir, new_dir) or code_dir == row.get("source_dir"))):
            raise bad(f"tasks[{i}]", "code_dir", code_dir, "is neither in the task's directory nor "
                      "its source_dir")
    for i, row in enumerate(rows.get("jobs", [])):
        job_dir = row.get("job_dir")
        if job_dir is not None and not (isinstance(job_dir, str)
                                        and _inside(job_dir, os.path.join(new_dir, "jobs"))):
            raise bad(f"jobs[{i}]", "job_dir", job_dir, "is not in the task's jobs/ directory")
    for i, row in enumerate(rows.get("checkpoints", [])):
        path = row.get("path")
        if not (isinstance(path, str) and _inside(path, os.path.join(new_dir, "jobs"))):
            raise bad(f"checkpoints[{i}]", "path", path, "is not in the task's jobs/ directory")


def _rebase(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str) and old and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):]
    return value


def read_archive_rows(tar_path: str, max_bytes: int = MAX_BYTES,
                      max_members: int = MAX_MEMBERS) -> dict[str, Any]:
    """The rows (``{table: [row, ...]}``, as stored) of an archive ``ctl export`` wrote, read in
    place after the same checks as ``ctl import``; UserError naming what is wrong."""
    try:
        tar = tarfile.open(tar_path, "r:gz")
    except _READ_ERRORS as exc:
        raise UserError(f"cannot read {tar_path}: {exc}") from None
    with tar:
        return _check_members(tar, max_bytes, max_members)[1]


def import_task(store: Store, tar_path: str, task: str | None = None, force: bool = False,
                max_bytes: int = MAX_BYTES, max_members: int = MAX_MEMBERS) -> str:
    """Import an exported task (renamed to ``task`` if given); returns the task's name.

    Refuses (UserError, nothing written) an unsafe, damaged or oversized archive, rows that are
    malformed or name paths outside the task's new directory, and an existing task without
    ``force``."""
    if not os.path.isfile(tar_path):
        raise UserError(f"no such archive: {tar_path}")
    try:
        tar = tarfile.open(tar_path, "r:gz")
    except _READ_ERRORS as exc:
        raise UserError(f"cannot read {tar_path}: {exc}") from None
    staging = ""
    try:
        with tar:
            manifest, rows = _check_members(tar, max_bytes, max_members)
            name = check_task_name(task or str(manifest.get("task") or ""))
            existing = store.get_task(name)
            if existing is not None and not force:
                raise UserError(f"task {name!r} already exists: add --force to replace it, or --task NEW")
            if existing is not None and existing["status"] == TaskStatus.RUNNING:
                raise UserError(f"task {name!r} is running: stop it before replacing it")
            old_dir = manifest.get("task_dir") or ""
            old_dir = old_dir if isinstance(old_dir, str) else ""
            new_dir = os.path.join(store.work_dir, "tasks", name)
            for table in rows.values():
                for row in table:
                    for key in ("task_dir", "code_dir", "job_dir", "config_path", "path"):
                        if key in row:
                            row[key] = _rebase(row[key], old_dir, new_dir)
            _check_paths(rows, new_dir)
            # Files go to a fresh directory first; the old task is replaced only once all are written.
            # (A leading dot: no task can be named so, and no task's directory is replaced by it.)
            staging = os.path.join(store.work_dir, "tasks", f".{name}.import")
            _remove_path(staging)
            os.makedirs(staging)
            for m in tar.getmembers():
                member = _name(m)
                if not member.startswith(FILES + "/"):
                    continue
                dest = os.path.join(staging, member[len(FILES) + 1:])
                if m.isdir():
                    os.makedirs(dest, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    try:
                        with tar.extractfile(m) as src, open(dest, "wb") as out:  # type: ignore[union-attr]
                            shutil.copyfileobj(src, out)
                    except OSError as exc:  # a full disk, say: named (the staging dir goes below)
                        raise _named(exc, dest) from None
                    os.chmod(dest, m.mode & 0o755 | 0o600)
        try:
            store.load_task(name, rows, replace=existing is not None)
        except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
                OverflowError, TypeError, ValueError) as exc:
            raise UserError(f"refusing archive: {ROWS}: its rows cannot be stored ({exc})") from None
    except (EOFError, zlib.error, tarfile.TarError, gzip.BadGzipFile) as exc:
        _remove_path(staging)
        raise UserError(f"cannot read {tar_path}: truncated or damaged archive "
                        f"({type(exc).__name__}: {exc}); nothing was imported") from None
    except BaseException:
        _remove_path(staging)
        raise
    _remove_path(new_dir)
    os.replace(staging, new_dir)
    return name


def _remove_path(path: str) -> None:
    """Remove a file, a link (not what it points to) or a directory tree, if there is one."""
    if not path:
        return
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


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
    then delete the task's rows and files. Returns the summary's path.

    Only ``<work dir>/tasks/<task>`` is deleted, whatever directory the task's row names (a row
    from a crafted archive or an edited store cannot make it delete anything else)."""
    import yaml

    row = store.require_task(task)
    task_dir = os.path.join(store.work_dir, "tasks", check_task_name(task))
    if row["status"] == TaskStatus.RUNNING:
        raise UserError(f"task {task} is running (pid {row['pid']} on {row['host']}): stop it "
                        f"first (`gml-ray ctl stop --task {task}`)")
    jobs = store.jobs(task)
    front = task_front(row, jobs)
    summary: dict[str, Any] = {"task": {k: row[k] for k in ("name", "status", "reward_attribute", "optimize_mode",
                                            "config_path", "message")},
               "jobs": [{"name": j["name"], "status": j["status"], "args": j["arg_dict"], "reward": j["reward"],
                         **(job_outcome(j, front) if front is not None else {})} for j in jobs]}
    if front is not None:
        summary["task"].update(front_summary(front))
    summary["task"]["config"] = yaml.safe_load(row["config_yaml"] or "null")
    _add_summary(summary_path, summary)
    store.delete_task(task)
    _remove_path(task_dir)
    return summary_path
