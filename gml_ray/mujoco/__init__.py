"""The MuJoCo benchmark (manual section 6): ``gml-ray run search_config.yaml --benchmark``.

* :mod:`.objective` — the objective as plain Python (no Ray): a linear policy's mean return on
  gymnasium's ``Swimmer-v5`` (16 dims) or ``Hopper-v5`` (33 dims);
* :mod:`.rollout` — Ray actors that each own one env, and the per-run pool of them;
* :mod:`.config` — the ``mujoco`` job mode: what ``--benchmark`` checks in a config;
* :mod:`.job` — :class:`MujocoJob`, one evaluation as a scheduler job, and its job kind;
* :mod:`.scheduler` — the manual's ``MujocoScheduler``: the normal scheduler in that mode.

The core names none of this: the mode and the job kind are entry points (``gml_ray.modes``,
``gml_ray.job_kinds``). Names are imported lazily, so ``gml_ray.mujoco.objective`` loads
without Ray.
"""
from __future__ import annotations

from typing import Any

__all__ = ["MujocoJob", "MujocoScheduler", "Objective", "FUNC_TYPES", "policy_size"]


def __getattr__(name: str) -> Any:
    if name == "MujocoJob":
        from gml_ray.mujoco.job import MujocoJob
        return MujocoJob
    if name == "MujocoScheduler":
        from gml_ray.mujoco.scheduler import MujocoScheduler
        return MujocoScheduler
    if name in ("Objective", "FUNC_TYPES", "policy_size"):
        from gml_ray.mujoco import objective
        return getattr(objective, name)
    raise AttributeError(f"module 'gml_ray.mujoco' has no attribute {name!r}")
