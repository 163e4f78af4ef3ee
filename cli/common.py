"""What every CLI command shares: the consoles, the work dir, opening the store, picking jobs."""
from __future__ import annotations

import os
from typing import List, Optional

from rich.console import Console

from gml_ray.errors import UserError

# Piped or redirected output gets wide lines instead of rich's 80-column fallback.
console = Console() if Console().is_terminal else Console(width=int(os.environ.get("COLUMNS", 200)))
err_console = Console(stderr=True)

WORKDIR_HELP = "work dir holding the store and task files [env GML_WORKDIR; default ./.gml]"


_work_dir: Optional[str] = None  # the last work dir resolved: named by store errors


def resolve_workdir(workdir: Optional[str]) -> str:
    """``--workdir``, else ``$GML_WORKDIR``, else ``./.gml`` (absolute)."""
    global _work_dir
    _work_dir = os.path.abspath(workdir or os.environ.get("GML_WORKDIR") or ".gml")
    return _work_dir


def last_work_dir() -> Optional[str]:
    """The work dir the command resolved last (None before any)."""
    return _work_dir


def open_store(workdir: Optional[str], write: bool = True):
    """The work dir's store; a run killed outright no longer looks RUNNING. With ``write=False``
    (commands that only read it) a store that cannot be written (read-only work dir or file
    system) is opened read-only instead."""
    import sqlite3

    from gml_ray.store.store import Store
    path = resolve_workdir(workdir)
    try:
        store = Store(path, create=False)
    except (sqlite3.OperationalError, PermissionError):
        if write or os.access(path, os.W_OK) and os.access(os.path.join(path, "gml.db"), os.W_OK):
            raise
        return Store(path, read_only=True)  # nothing to reap: it cannot be written anyway
    store.reap_dead_runs()  # a run killed with SIGKILL must not look RUNNING forever
    return store


def select_jobs(store, task: str, jobs: Optional[str]) -> Optional[List[str]]:
    """``--jobs job_0001,2`` as job names (None: all); an unknown job is a UserError."""
    if not jobs:
        return None
    from gml_ray.engine.spec import job_name
    names = []
    for item in (j.strip() for j in jobs.split(",")):
        if item:
            names.append(job_name(int(item)) if item.isdigit() else item)
    known = {j["name"] for j in store.jobs(task)}
    missing = [n for n in names if n not in known]
    if missing:
        raise UserError(f"task {task} has no job {missing[0]!r} (jobs: {', '.join(sorted(known)[:5])}"
                        f"{', ...' if len(known) > 5 else ''})")
    return names
