"""The Pareto front of a task, for scripts: :func:`pareto_front` (``gml_ray.pareto_front``)."""
from __future__ import annotations

import os
from typing import Any

from gml_ray.errors import UserError
from gml_ray.objectives import task_front
from gml_ray.store.store import Store


def pareto_front(task: str, work_dir: str | None = None) -> list[dict[str, Any]]:
    """The jobs on ``task``'s Pareto front (feasible, every objective reported, dominated by no
    other such job), in job order: each ``{"name", "status", "args", "config", "values":
    {objective: value}, "job_dir"}``. ``work_dir``: the store's directory (default
    ``$GML_WORKDIR``, else ``./.gml``, as the CLI). UserError for a task with one objective."""
    store = Store(work_dir or os.environ.get("GML_WORKDIR") or ".gml", create=False, read_only=True)
    try:
        row = store.require_task(task)
        front = task_front(row, store.jobs(task))
    finally:
        store.close()
    if front is None:
        raise UserError(f"task {task} has one objective ({row['reward_attribute']}): it has a best "
                        f"job, not a front")
    return [{"name": j["name"], "status": j["status"], "args": j["arg_dict"], "config": j["config"],
             "values": dict(zip(front.spec.names, j["rewards"])), "job_dir": j["job_dir"]}
            for j in front.members]
