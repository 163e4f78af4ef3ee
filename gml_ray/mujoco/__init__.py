"""The MuJoCo benchmark (manual section 6): ``gml-ray run search_config.yaml --benchmark``.

* :mod:`.objective` — the objective as plain Python (no Ray): a linear policy's mean return on
  gymnasium's ``Swimmer-v5`` (16 dims) or ``Hopper-v5`` (33 dims);
* :mod:`.rollout` — Ray actors that each own one env, and the per-run pool of them;
* :mod:`.job` — :class:`MujocoJob`, one evaluation as a scheduler job.

The manual's ``MujocoScheduler`` is the normal scheduler in benchmark mode: ``MujocoScheduler``
here is :class:`~gml_ray.schedulers.NaiveScheduler` loading its config with ``benchmark=True``.
Names are imported lazily, so ``gml_ray.mujoco.objective`` loads without Ray.
"""
from __future__ import annotations

from typing import Any

__all__ = ["MujocoJob", "MujocoScheduler", "Objective", "FUNC_TYPES", "policy_size"]


def __getattr__(name: str) -> Any:
    if name == "MujocoJob":
        from gml_ray.mujoco.job import MujocoJob
        return MujocoJob
    if name == "MujocoScheduler":
        from gml_ray.engine.scheduler import MujocoScheduler
        return MujocoScheduler
    if name in ("Objective", "FUNC_TYPES", "policy_size"):
        from gml_ray.mujoco import objective
        return getattr(objective, name)
    raise AttributeError(f"module 'gml_ray.mujoco' has no attribute {name!r}")
