"""The manual's ``MujocoScheduler`` (section 6.3): the normal scheduler in the ``mujoco`` job mode."""
from __future__ import annotations

from typing import Any

from gml_ray.config.task import TaskConfig
from gml_ray.engine.scheduler import NaiveScheduler


class MujocoScheduler(NaiveScheduler):
    """:class:`NaiveScheduler` with ``mode="mujoco"`` (what ``--benchmark`` runs): the same loop,
    its jobs :class:`~gml_ray.mujoco.job.MujocoJob` evaluations on the run's rollout actors."""

    def __init__(self, work_dir: str, config: TaskConfig | dict | str, symlink_paths: Any = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mode", "mujoco")
        super().__init__(work_dir, config, symlink_paths, **kwargs)
