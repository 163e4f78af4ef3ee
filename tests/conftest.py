"""Shared fixtures: one real local Ray instance per test session, and helpers to run tasks."""
from __future__ import annotations

import contextlib
import os
import textwrap

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs, shared by every test that needs Ray, shut down at the end."""
    import logging

    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    yield ray
    ray.shutdown()


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


@pytest.fixture
def run_task(ray_session, tmp_path):
    """run_task(config_yaml, files={...}, task='t') writes the files and runs the task to its end."""
    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    def _run(config_yaml: str, files: dict[str, str] | None = None, task: str = "t",
             on_progress=None) -> TaskRun:
        code = tmp_path / "code"
        write_files(code, {"search_config.yaml": config_yaml, **(files or {})})
        cfg = load_config(str(code / "search_config.yaml"))
        work_dir = str(tmp_path / "wd")
        scheduler = NaiveScheduler(work_dir, cfg, task=task)
        store = scheduler.prepare()
        summary = scheduler.run(on_progress=on_progress)
        return TaskRun(summary, store, task, work_dir)

    return _run


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


@pytest.fixture(scope="session")
def ray_head():
    """The address of one `ray start` head (2 CPUs, 1 declared GPU) that CLI runs in tests join
    with ``--address`` instead of each starting and stopping a local Ray of its own."""
    from test_cluster import Node, free_port, wait_nodes
    port = free_port()
    node = Node("--head", f"--port={port}", "--num-cpus=2", "--num-gpus=1", "--include-dashboard=false",
                f"--dashboard-agent-listen-port={free_port()}")
    address = f"127.0.0.1:{port}"
    try:
        wait_nodes(address, 1)
        yield address
    finally:
        node.stop()
