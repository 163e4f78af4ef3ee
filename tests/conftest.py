"""Shared fixtures: one real local Ray instance per test process, a Ray head the CLI tests join,
and running a task; the `ray` marker, applied and checked. Plain helpers are in ``tests/helpers``.

A test is marked ``ray`` when it starts Ray: here by using a fixture that does (``ray_session``,
``run_task``, ``ray_head``) or by being a ``cluster`` test, else by its own mark (a test that runs
``gml-ray run`` on a local Ray of its own). A test not marked ``ray`` is failed when Ray started
during it: ``ray.init`` in this process, or a Ray started by a process it ran (each such test gets
a ``RAY_TMPDIR`` of its own, where any Ray started under it leaves its session directory).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest
from helpers import TaskRun, write_files

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Fixtures that start Ray (in this process, or a `ray start` head): a test using one is a `ray` test.
RAY_FIXTURES = frozenset({"ray_session", "run_task", "ray_head"})


@pytest.fixture(scope="session")
def ray_session(ray_head):
    """This test process's Ray: it joins the session's `ray start` head (``ray_head``), which the
    CLI runs of the same test process join too (pytest-xdist: one per worker). One Ray per test
    process, not two: each idle Ray costs the 2 cores about 5% of one."""
    import logging

    import ray
    ray.init(address=ray_head, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


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


@pytest.fixture(scope="session")
def ray_head():
    """The address of one `ray start` head (2 CPUs, 1 declared GPU) that CLI runs in tests join
    with ``--address`` instead of each starting and stopping a local Ray of its own."""
    from helpers.cluster import Node, free_port, wait_nodes
    port = free_port()
    node = Node("--head", f"--port={port}", "--num-cpus=2", "--num-gpus=1", "--include-dashboard=false",
                "--include-log-monitor=false",  # its drivers take no worker logs (log_to_driver=False)
                f"--dashboard-agent-listen-port={free_port()}")
    address = f"127.0.0.1:{port}"
    try:
        wait_nodes(address, 1)
        yield address
    finally:
        node.stop()


# ---- the `ray` marker ------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if RAY_FIXTURES.intersection(getattr(item, "fixturenames", ())) or item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.ray)


def _ray_in_process() -> bool:
    ray = sys.modules.get("ray")  # never imported: never initialised (and no import here)
    return ray is not None and ray.is_initialized()


class _NoRay:
    """What a test not marked ``ray`` must not do: initialise Ray in this process, or start one
    in a process it runs (seen as a session directory in the test's own ``RAY_TMPDIR``)."""

    def __init__(self) -> None:
        # Where this process runs Ray already (a `ray` test of the same file set it up), only the
        # in-process check applies: its Ray is left the RAY_TMPDIR it started with.
        self.ray_before = _ray_in_process()
        self.tmpdir = self.old_tmpdir = None
        if not self.ray_before:
            self.tmpdir = tempfile.mkdtemp(prefix="gml-noray-", dir="/tmp")  # short: Ray's socket paths
            self.old_tmpdir = os.environ.get("RAY_TMPDIR")
            os.environ["RAY_TMPDIR"] = self.tmpdir

    def check(self) -> None:
        if not self.ray_before and _ray_in_process():
            pytest.fail("Ray was initialised in the test process during a test not marked `ray`: "
                        "mark it @pytest.mark.ray (or use the ray_session fixture)", pytrace=False)
        sessions = self.tmpdir and os.path.isdir(os.path.join(self.tmpdir, "ray")) and [
            n for n in os.listdir(os.path.join(self.tmpdir, "ray")) if n.startswith("session_")]
        if sessions:
            pytest.fail("a process this test ran started Ray, but the test is not marked `ray`: "
                        "mark it @pytest.mark.ray", pytrace=False)

    def end(self) -> None:
        if self.tmpdir is not None:
            if os.environ.get("RAY_TMPDIR") == self.tmpdir:
                if self.old_tmpdir is None:
                    del os.environ["RAY_TMPDIR"]
                else:
                    os.environ["RAY_TMPDIR"] = self.old_tmpdir
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


_NO_RAY = pytest.StashKey[_NoRay]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    if not item.get_closest_marker("ray"):
        item.stash[_NO_RAY] = _NoRay()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    watch = item.stash.get(_NO_RAY, None)
    if watch is not None:
        watch.check()  # a failure here fails the test itself
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        watch = item.stash.get(_NO_RAY, None)
        if watch is not None:
            watch.end()
