"""Stores filled by hand (no run) for the tests that read a task back: the report, the
TensorBoard export, the live view."""
from __future__ import annotations

import os
import time

from gml_ray.store import Store


def make_store(tmp_path, jobs=5, steps=6, status="FINISHED", task="t", tags=("acc", "loss"),
               running=0, logs=True, args=None):
    """A store with one task of ``jobs`` jobs (the last ``running`` of them still RUNNING)."""
    store = Store(str(tmp_path / "wd"))
    with store.transaction():
        _fill(store, tmp_path, jobs, steps, status, task, tags, running, logs, args)
    return store


def _fill(store, tmp_path, jobs, steps, status, task, tags, running, logs, args):
    task_dir = str(tmp_path / "wd" / "tasks" / task)
    now = time.time()
    store.create_task(task, status=status, reward_attribute=tags[0], optimize_mode="maximize",
                      scalar_columns=list(tags), task_dir=task_dir, started=now - 100, heartbeat=now,
                      ended=None if status == "RUNNING" else now)
    for i in range(1, jobs + 1):
        arg = args(i) if args else {"lr": 0.001 * i, "opt": ["sgd", "adam"][i % 2]}
        job_dir = os.path.join(task_dir, "jobs", f"job_{i:04d}")
        os.makedirs(job_dir, exist_ok=True)
        if logs:
            with open(os.path.join(job_dir, "stdout.log"), "w") as f:
                f.write("".join(f"job {i} epoch {e}\n" for e in range(50)) + f"END OF JOB {i}\n")
        is_running = i > jobs - running
        store.add_job(task, i, f"job_{i:04d}", arg, arg, f"python train.py {i}", job_dir,
                      status="RUNNING" if is_running else "FINISHED")
        rows = [(i, tag, s, (0.1 * i + 0.01 * s) if tag == tags[0] else 1.0 / (s + 1), int(now * 1000), 1)
                for s in range(steps) for tag in tags]
        store.add_scalars(task, rows)
        store.update_job(task, i, reward=0.1 * i + 0.01 * (steps - 1), started=now - 100 + i,
                         ended=None if is_running else now - 50 + i, node="127.0.0.1 abc")
