"""A task's copy of the user's code directory, so that editing code during a run changes nothing.

Paths named in ``--symlinks`` (data, checkpoints) are linked instead of copied. Version-control
folders, caches, virtualenvs and the gml-ray work dir itself are left out. Links in the code dir
stay links: one that points inside it keeps pointing inside (relative, so into the snapshot); one
that points outside it is linked to its absolute target (a relative ``data -> ../data`` would
dangle in ``tasks/<task>/code``), with a warning; a dangling one is copied as it is, with a warning.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Callable, Sequence

from gml_ray.errors import UserError

MAX_SNAPSHOT_BYTES = 1 << 30
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".gml",
             "gml_scalars", "node_modules", ".ipynb_checkpoints"}


def _is_venv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


def _print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _link_target(src: str, code_dir: str, rel: str, skip: set[str],
                 warn: Callable[[str], None]) -> str:
    """What the snapshot's copy of the link ``src`` (``rel`` in ``code_dir``) should point to."""
    raw = os.readlink(src)
    target = os.path.realpath(src)
    where = os.path.normpath(os.path.join(code_dir, rel))
    if not os.path.exists(target):
        warn(f"{where} -> {raw} dangles (no such file): copied as it is into the snapshot, where "
             f"jobs will not find it either")
        return raw
    inside = target == code_dir or target.startswith(code_dir + os.sep)
    if inside and not _left_out(target, code_dir, skip):
        # inside the code dir: a relative link, so that it points into the snapshot
        # (the walk does not follow links, so the link's folder is a real path under code_dir)
        return os.path.relpath(target, os.path.dirname(where))
    if not os.path.isabs(raw):
        why = "into a folder the snapshot leaves out" if inside else "outside the code dir"
        warn(f"{where} -> {raw} points {why}: the snapshot links it to {target}")
    return target


def _left_out(path: str, code_dir: str, skip: set[str]) -> bool:
    """Whether ``path`` (real, inside ``code_dir``) is in a folder the snapshot leaves out."""
    parts = os.path.relpath(path, code_dir).split(os.sep)
    for i in range(len(parts)):
        here = os.path.join(code_dir, *parts[: i + 1])
        if parts[i] in SKIP_DIRS or here in skip or (os.path.isdir(here) and _is_venv(here)):
            return True
    return False


def snapshot_code(code_dir: str, dest: str, symlink_paths: Sequence[str] = (),
                  exclude: Sequence[str] = (), max_bytes: int = MAX_SNAPSHOT_BYTES,
                  warn: Callable[[str], None] | None = None) -> str:
    """Copy ``code_dir`` to ``dest`` (replacing it), linking ``symlink_paths``; returns ``dest``.
    Links are kept working (see the module's doc); ``warn`` (default: a line on stderr) gets one
    line per link that points outside the code dir or dangles."""
    warn = warn or _print_warning
    code_dir = os.path.realpath(code_dir)
    links = {}
    for p in symlink_paths:
        full = os.path.realpath(os.path.join(code_dir, p))
        if not os.path.exists(full):
            raise UserError(f"--symlinks {p}: no such path in {code_dir}")
        if not (full + os.sep).startswith(code_dir + os.sep) or full == code_dir:
            raise UserError(f"--symlinks {p}: must be a path inside {code_dir}")
        links[full] = os.path.relpath(full, code_dir)
    skip = {os.path.realpath(e) for e in exclude} | {os.path.realpath(dest)}
    if os.path.lexists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    total = 0
    for root, dirs, files in os.walk(code_dir, followlinks=False):
        rel_root = os.path.relpath(root, code_dir)
        out_root = dest if rel_root == "." else os.path.join(dest, rel_root)
        keep = []
        for d in sorted(dirs):
            src = os.path.join(root, d)
            real = os.path.realpath(src)
            if real in links:
                os.symlink(real, os.path.join(out_root, d))
            elif os.path.islink(src):
                os.symlink(_link_target(src, code_dir, os.path.join(rel_root, d), skip, warn),
                           os.path.join(out_root, d))
            elif d in SKIP_DIRS or real in skip or _is_venv(src):
                continue
            else:
                os.makedirs(os.path.join(out_root, d))
                keep.append(d)
        dirs[:] = keep
        for f in files:
            src = os.path.join(root, f)
            out = os.path.join(out_root, f)
            real = os.path.realpath(src)
            if real in links:
                os.symlink(real, out)
            elif os.path.islink(src):
                os.symlink(_link_target(src, code_dir, os.path.join(rel_root, f), skip, warn), out)
            else:
                total += os.path.getsize(src)
                if total > max_bytes:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise UserError(f"{code_dir} holds more than {max_bytes >> 20} MiB to copy: pass "
                                    f"--symlinks for big folders (data, checkpoints) or --no-snapshot")
                shutil.copy2(src, out)
    return dest
