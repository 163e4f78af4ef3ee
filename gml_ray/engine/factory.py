"""From a searcher's config to a Job: the job kinds and the factory the scheduler asks.

A job kind says how a task's jobs run: ``command`` (the rendered template), ``function``
(``task.function`` on a pool of trial actors), or a job mode's (:mod:`gml_ray.config.modes`),
which the package that brings it registers under the ``gml_ray.job_kinds`` entry points. The
scheduler names no kind: :attr:`TaskConfig.job_kind <gml_ray.config.task.TaskConfig.job_kind>`
picks it.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import gml_ray.config.render as render
from gml_ray.config.task import TaskConfig
from gml_ray.engine.channel import ChannelName
from gml_ray.engine.checkpoints import Restore, checkpoint_dir
from gml_ray.engine.job import CommandJob, FunctionJob, Job
from gml_ray.engine.pool import ActorPool
from gml_ray.engine.spec import job_name
from gml_ray.engine.workers import TrialActor
from gml_ray.space import Dict


@dataclass
class JobContext:
    """What every job of a run shares (the factory's inputs besides the config)."""

    cfg: TaskConfig
    task: str
    task_dir: str
    code_dir: str
    channel: ChannelName
    space: Dict


class JobKind(ABC):
    """How a task's jobs are made.

    ``pooled``: whether :meth:`make_pool` gives a pool of ``parallel_size`` actors that hold
    their resources for the whole run (the scheduler then runs no more jobs at once than the
    cluster holds such actors)."""

    pooled = False

    def make_pool(self, ctx: JobContext) -> ActorPool | None:
        """Called once when a run starts: the pool of reusable actors its jobs run on, or None
        (each job is a Ray task). The scheduler shuts the pool down when the run ends."""
        return None

    @abstractmethod
    def make(self, ctx: JobContext, config: dict, job_id: int, attempt: int, pool: ActorPool | None,
             common: dict[str, Any]) -> Job:
        """Called once per job, before the filter criterion sees it: the not-yet-started Job for
        ``config``. It writes nothing (a filtered job leaves no trace). ``common`` holds the Job
        constructor's shared keyword arguments (job_dir, cwd, job_id, attempt, resources, ...)."""


class CommandKind(JobKind):
    """The rendered template, run as a Ray task in its own process group. (Not on a pool of
    actors: a task waits for its resources, where a pool actor would hold them for the whole run,
    and jobs asking for more GPUs than there are would wait on actors that never start.)"""

    def make(self, ctx: JobContext, config: dict, job_id: int, attempt: int, pool: ActorPool | None,
             common: dict[str, Any]) -> Job:
        rendered = render.render_job(ctx.space, config, common["job_dir"], ctx.cfg.template,
                                     ctx.cfg.file_bases)
        job = CommandJob(rendered.command or "", job_name(job_id), rendered.arg_dict, config=config, **common)
        job.rendered = rendered
        return job


class FunctionKind(JobKind):
    """``task.function`` called with the config's values on a pool of reusable trial actors."""

    pooled = True

    def make_pool(self, ctx: JobContext) -> ActorPool | None:
        return ActorPool(TrialActor, ctx.cfg.parallel_size, ctx.cfg.resources)

    def make(self, ctx: JobContext, config: dict, job_id: int, attempt: int, pool: ActorPool | None,
             common: dict[str, Any]) -> Job:
        rendered = render.render_job(ctx.space, config, common["job_dir"], None, ctx.cfg.file_bases)
        job = FunctionJob(ctx.cfg.function or "", job_name(job_id), rendered.values, rendered.arg_dict,
                          config=config, pool=pool, **common)
        job.rendered = rendered
        return job


JOB_KINDS: dict[str, JobKind] = {"command": CommandKind(), "function": FunctionKind()}
ENTRY_POINTS = "gml_ray.job_kinds"


def job_kind(name: str) -> JobKind:
    """The kind ``name``: a built-in one, else the class an installed package registers under
    the ``gml_ray.job_kinds`` entry points (imported only when a task needs it)."""
    if name not in JOB_KINDS:
        for ep in entry_points(group=ENTRY_POINTS, name=name):
            JOB_KINDS[name] = ep.load()()
    if name not in JOB_KINDS:
        raise KeyError(f"unknown job kind {name!r} (known: {', '.join(sorted(JOB_KINDS))})")
    return JOB_KINDS[name]


class JobFactory:
    """Makes a run's jobs (and its actor pool) for the task's job kind."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.kind = job_kind(ctx.cfg.job_kind)
        self.pool: ActorPool | None = None

    def start_pool(self) -> ActorPool | None:
        """Create the run's pool of reusable actors, if its kind uses one."""
        self.pool = self.kind.make_pool(self.ctx)
        return self.pool

    def job_dir(self, job_id: int) -> str:
        """Where job ``job_id`` of the task keeps its files (every attempt)."""
        return os.path.join(self.ctx.task_dir, "jobs", job_name(job_id))

    def make(self, config: dict, job_id: int, attempt: int = 1, restore: Restore | None = None) -> Job:
        """The job for ``config`` (an attempt > 1 runs it again; ``restore``: from that checkpoint)."""
        ctx = self.ctx
        job_dir = self.job_dir(job_id)
        common = dict(job_dir=job_dir, cwd=ctx.code_dir,
                      job_id=job_id, attempt=attempt, generate_log=ctx.cfg.generate_log,
                      collect_metrics=ctx.cfg.collect_metrics, env={"GML_TASK": ctx.task},
                      resources=ctx.cfg.resources, channel=ctx.channel,
                      time_limit=ctx.cfg.stop.time_limits_per_job)
        job = self.kind.make(ctx, config, job_id, attempt, self.pool, common)
        job.spec.checkpoint_dir = checkpoint_dir(job_dir)
        if restore is not None:
            job.restore = restore
            job.spec.restore_from, job.spec.restore_step = restore.path, restore.step
        return job
