"""A task's copy of the user's code directory, so that editing code during a run changes nothing.

Paths named in ``--symlinks`` (data, checkpoints) are linked instead of copied. Version-control
folders, caches, virtualenvs and the gml-ray work dir itself are left out.
"""
from __future__ import annotations

import os
import shutil

from .errors import UserError

MAX_SNAPSHOT_BYTES = 1 << 30
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".gml",
             "gml_scalars", "node_modules", ".ipynb_checkpoints"}


def _is_venv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


def snapshot_code(code_dir: str, dest: str, symlink_paths: list[str] = (),
                  exclude: list[str] = (), max_bytes: int = MAX_SNAPSHOT_BYTES) -> str:
    """Copy ``code_dir`` to ``dest`` (replacing it), linking ``symlink_paths``; returns ``dest``."""
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
                os.symlink(os.readlink(src), os.path.join(out_root, d))
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
                os.symlink(os.readlink(src), out)
            else:
                total += os.path.getsize(src)
                if total > max_bytes:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise UserError(f"{code_dir} holds more than {max_bytes >> 20} MiB to copy: pass "
                                    f"--symlinks for big folders (data, checkpoints) or --no-snapshot")
                shutil.copy2(src, out)
    return dest
