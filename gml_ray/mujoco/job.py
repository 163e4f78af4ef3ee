"""``MujocoJob``: one policy evaluation of the MuJoCo benchmark, run on a rollout actor of the pool.

It is a :class:`~gml_ray.engine.job.Job` like the others (``start``, ``wait``, ``kill``,
``status``), so the normal scheduler loop runs it: its ``ref`` resolves to an outcome dict with the
scalars inside (``sent=0``), and the scheduler stores them and takes the reward from them.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import gml_ray.config.render as render
from gml_ray.engine.factory import JobContext, JobKind
from gml_ray.engine.job import Job, spec_kwargs
from gml_ray.engine.spec import JobSpec, job_name
from gml_ray.mujoco.config import MujocoSettings
from gml_ray.mujoco.objective import DEFAULT_ROLLOUTS, job_seed
from gml_ray.mujoco.rollout import RolloutPool


def policy_vector(config: dict, names: Sequence[str]) -> list[float]:
    """A searcher's config as the policy vector: the values of ``names`` (a0..a{d-1}) in order."""
    return [float(config[name]) for name in names]


class MujocoJob(Job):
    """Evaluates ``vector`` (the config's args in order) on a free actor of ``pool``.

    The evaluation's env seed is :func:`~gml_ray.mujoco.objective.job_seed` of the job id and
    attempt, so the result does not depend on which actor ran it. Without a ``pool`` the job
    makes a one-actor pool of its own and kills it when it ends. ``kill()`` asks the actor to stop
    (within 50 env steps); the actor goes back to the pool when the job's outcome is read.
    """

    def __init__(self, func_type: str, name: str, vector: Sequence[float], arg_dict: dict | None = None,
                 *, pool: RolloutPool | None = None, rollouts: int = DEFAULT_ROLLOUTS,
                 reward_attribute: str = "default", job_dir: str | None = None,
                 cwd: str | None = None, **kwargs: Any) -> None:
        spec = JobSpec(name=name, command=f"mujoco {func_type}", cwd=cwd or os.getcwd(),
                       job_dir=job_dir or os.path.join(os.getcwd(), name), **spec_kwargs(kwargs))
        super().__init__(spec, arg_dict, pool=pool, **kwargs)
        self.func_type = func_type
        self.vector = [float(v) for v in vector]
        self._own_pool = pool is None
        self.rollouts, self.reward_attribute = rollouts, reward_attribute
        self.seed = job_seed(spec.job_id, spec.attempt)

    @property
    def starts_running(self) -> bool:
        return True  # always on a pool actor (its own one if none was given)

    def start(self, **kwargs: Any) -> "MujocoJob":
        if self.pool is None:
            self.pool = RolloutPool(self.func_type, 1, self.resources, self.rollouts, self.reward_attribute)
        super().start()
        return self

    def _submit(self, actor: Any) -> Any:
        return actor.evaluate.remote(self.vector, self.seed, self._token, self.spec.time_limit)

    def resolve(self) -> dict:
        outcome = super().resolve()
        if self._own_pool and self.pool is not None:
            self.pool.shutdown()
        return outcome


class MujocoKind(JobKind):
    """``--benchmark`` tasks: each config is a policy vector evaluated on the run's rollout actors."""

    pooled = True

    def make_pool(self, ctx: JobContext) -> RolloutPool:
        cfg = ctx.cfg
        settings: MujocoSettings = cfg.mode_settings
        return RolloutPool(settings.func_type, cfg.parallel_size, cfg.resources, settings.rollouts,
                           cfg.reward_attribute)

    def make(self, ctx: JobContext, config: dict, job_id: int, attempt: int, pool: Any,
             common: dict[str, Any]) -> Job:
        cfg = ctx.cfg
        settings: MujocoSettings = cfg.mode_settings
        return MujocoJob(settings.func_type, job_name(job_id), policy_vector(config, cfg.arg_names),
                         render.arg_dict(ctx.space, config), config=config, pool=pool,
                         rollouts=settings.rollouts, reward_attribute=cfg.reward_attribute, **common)
