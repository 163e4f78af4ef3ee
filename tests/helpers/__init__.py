"""Plain helpers the tests share (fixtures live in ``tests/conftest.py``).

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test anywhere under it
imports these as ``from helpers import write_files`` (and ``helpers.cli``, ``helpers.cluster``,
``helpers.runs``, ``helpers.stores``). Paths are found from here, never from a test file's place:
:data:`DATA_DIR` is ``tests/data``, :data:`REPO_DIR` the repository root.
"""
from __future__ import annotations

import contextlib
import os
import textwrap

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(TESTS_DIR)
DATA_DIR = os.path.join(TESTS_DIR, "data")


def pid_alive(pid: int) -> bool:
    """Whether a process runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def owned_processes(driver_pid: int) -> list[int]:
    """Live processes of the local Ray (and jobs) a `gml-ray run` driver started: each carries
    the driver's ``GML_RAY_OWNER`` mark in its environment, Ray's agents included."""
    needle = f"GML_RAY_OWNER={driver_pid}-".encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read() and pid_alive(int(entry)):
                        out.append(int(entry))
            except OSError:
                pass
    return out


def write_files(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))


class TaskRun:
    """The result of running a task in a test: summary, jobs and scalars read from the store."""

    def __init__(self, summary, store, task, work_dir):
        self.summary, self.store, self.task, self.work_dir = summary, store, task, work_dir

    @property
    def jobs(self):
        return self.store.jobs(self.task)

    def statuses(self):
        return [j["status"] for j in self.jobs]

    def scalars(self, job_id=None, tag=None):
        return self.store.scalars(self.task, None if job_id is None else [job_id],
                                  None if tag is None else [tag])


@contextlib.contextmanager
def resumed_core(run: TaskRun, cfg):
    """The loop a ``run --resume`` of ``run``'s task starts from (its searcher told every earlier
    result), without running it; its channel actor is ended on exit."""
    import ray

    from gml_ray.engine.loop import SchedulerCore
    task_dir = os.path.join(run.work_dir, "tasks", run.task)
    core = SchedulerCore(cfg, run.task, run.work_dir, task_dir, os.path.join(task_dir, "code"), resume=True)
    try:
        yield core
    finally:
        ray.kill(core.channel)
