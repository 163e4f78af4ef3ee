"""Driving the real `gml-ray` command line from a test."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from gml_ray.store import Store
from helpers import pid_alive

BIN = os.path.dirname(sys.executable)


def gml(*args, cwd=None, timeout=120, tool="gml-ray"):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([os.path.join(BIN, tool), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def wait_for(predicate, timeout=60.0, every=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def running_jobs(tmp_path, task):
    path = tmp_path / "wd" / "gml.db"
    if not path.exists():
        return []
    store = Store(str(tmp_path / "wd"), create=False)
    if store.get_task(task) is None:
        return []
    return [j for j in store.jobs(task) if j["status"] == "RUNNING" and os.path.exists(
        os.path.join(j["job_dir"], "pid"))]


def running_pids(tmp_path, task, n=2):
    """Wait until ``n`` jobs of ``task`` run; their training processes' pids."""
    jobs = wait_for(lambda: len(running_jobs(tmp_path, task)) == n and running_jobs(tmp_path, task),
                    timeout=90)
    return [int(open(os.path.join(j["job_dir"], "pid")).read()) for j in jobs]


def pid_gone(pid: int) -> bool:
    return not pid_alive(pid)
