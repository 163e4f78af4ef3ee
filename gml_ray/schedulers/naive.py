"""The driver side of a run: ``NaiveScheduler(work_dir, config, symlink_paths).run()`` (manual 3.1).

It records the task, snapshots its code, starts or joins Ray, and runs the loop
(:class:`~gml_ray.schedulers.loop.SchedulerCore`) inside :class:`SchedulerActor`, a Ray actor on the
driver's node (the store, SQLite, is a local file there); Ctrl+C asks the actor to stop.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
from typing import Any, Callable

import ray
import ray.util.scheduling_strategies
import yaml

from ..config import TaskConfig, load_config, parse_config
from ..errors import UserError
from ..plugins import build_components
from ..snapshot import snapshot_code
from ..store import (
    ERROR,
    RUNNING,
    Store,
    check_task_name,  # noqa: F401 - re-exported
    run_time,
)
from ..store_backlog import load_spills
from .loop import WAKE_S, SchedulerCore
from .spec import job_name  # noqa: F401 - re-exported (the manual's scripts import it from here)

log = logging.getLogger("gml_ray.scheduler")


class _LogFile(logging.FileHandler):
    """scheduler.log, flushed at most every ``WAKE_S`` (the loop flushes it on its heartbeat)
    and at once for warnings: two lines per job, each flushed, cost 5% of a short trial."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._flushed = time.monotonic()
        self._lazy = False  # True while emit() runs: its flush may wait

    def emit(self, record: logging.LogRecord) -> None:
        self._lazy = record.levelno < logging.WARNING
        try:
            super().emit(record)  # writes, then calls flush()
        finally:
            self._lazy = False

    def flush(self) -> None:
        if self._lazy and time.monotonic() - self._flushed < WAKE_S:
            return
        self._flushed = time.monotonic()
        super().flush()


@ray.remote(num_cpus=0, max_concurrency=4, max_restarts=0)
class SchedulerActor:
    """Hosts :class:`SchedulerCore`; ``run`` blocks until the task ends, ``stop`` may be called meanwhile."""

    def __init__(self, cfg: TaskConfig, task: str, work_dir: str, task_dir: str, code_dir: str,
                 resume: bool = False) -> None:
        try:  # a Ctrl+C in the driver's terminal must reach the scheduler as a stop, not a crash
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass
        handler = _LogFile(os.path.join(task_dir, "scheduler.log"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
        self.core = SchedulerCore(cfg, task, work_dir, task_dir, code_dir, resume)

    def run(self) -> dict[str, Any]:
        try:
            return self.core.run()
        finally:
            logging.getLogger().handlers[0].flush()

    def store_problem(self) -> str | None:
        return self.core.store_problem()

    def stop(self, status: str, reason: str) -> None:
        self.core.external_stop(status, reason)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_text(exc: BaseException) -> str:
    """One line for an exception: its type and message, colour codes removed."""
    text = " ".join(_ANSI.sub("", str(exc)).split())
    return f"{type(exc).__name__}: {text}"[:1000]


def _check_same_mode(task: str, config_yaml: str | None, cfg: TaskConfig) -> None:
    """``--resume`` must run a task the way it was run: with --benchmark (same func_type) or without."""
    try:
        raw = yaml.safe_load(config_yaml or "") or {}
        sched = raw.get("scheduler") or {}
        tmpl, func = (raw.get("task") or {}).get("template"), (raw.get("task") or {}).get("function")
    except (yaml.YAMLError, AttributeError):
        return
    was = sched.get("func_type") if isinstance(sched, dict) and not (tmpl and str(tmpl).strip()) \
        and not func else None
    if was and not cfg.benchmark:
        raise UserError(f"task {task} ran the MuJoCo benchmark ({was}): resume it with --benchmark")
    if cfg.benchmark and not was:
        raise UserError(f"task {task} is not a MuJoCo benchmark task: resume it without --benchmark")
    if cfg.benchmark and was != cfg.func_type:
        raise UserError(f"task {task} ran scheduler.func_type {was}, the config now says "
                        f"{cfg.func_type}: resume it with the config it ran")


class Terminated(KeyboardInterrupt):
    """The run was ended by SIGTERM: its jobs are ERROR ("terminated (SIGTERM)")."""


_SIGNAL_REASON: dict[int, str] = {signal.SIGINT: "interrupted (Ctrl+C)", signal.SIGTERM: "terminated (SIGTERM)"}


class NaiveScheduler:
    """Runs one task to its end: ``NaiveScheduler(work_dir, config, symlink_paths).run()``.

    ``config`` is a parsed :class:`TaskConfig`, a config dict (as the manual passes it) or the path
    of a ``search_config.yaml``. Jobs run in a snapshot of ``code_dir`` (default: the config's
    directory) under the task dir, with ``symlink_paths`` linked instead of copied. Ray is joined
    if it is running, else started locally. ``resume=True`` continues an existing task.
    """

    def __init__(self, work_dir: str, config: TaskConfig | dict | str, symlink_paths: Any = None, *,
                 task: str | None = None, code_dir: str | None = None, address: str | None = None,
                 num_cpus: int | None = None, num_gpus: int | None = None, resume: bool = False,
                 snapshot: bool = True,
                 benchmark: bool = False) -> None:
        if isinstance(config, str):
            config = load_config(config, benchmark=benchmark)
        elif isinstance(config, dict):
            config = parse_config(config, "config", code_dir or os.getcwd(), benchmark=benchmark)
        elif benchmark and not config.benchmark:  # parsed without benchmark=True: check it again
            config = parse_config(config.raw, config.source, config.base_dir, benchmark=True)
        self.cfg: TaskConfig = config
        if config.benchmark:
            snapshot = False  # the MuJoCo benchmark runs no user code: nothing to snapshot
        self.work_dir = os.path.abspath(work_dir)
        self.symlink_paths = list(symlink_paths or [])
        self.task = check_task_name(task or time.strftime("task_%Y%m%d_%H%M%S"))
        self.source_dir = os.path.abspath(code_dir or config.base_dir)
        self.task_dir = os.path.join(self.work_dir, "tasks", self.task)
        self.code_dir = os.path.join(self.task_dir, "code") if snapshot else self.source_dir
        self.snapshot, self.resume = snapshot, resume
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.store: Store | None = None
        self.loaded_spills: list[str] = []  # spill files of earlier runs that --resume wrote

    def prepare(self) -> Store:
        """Validate plugins, record the task and snapshot its code (before Ray starts)."""
        build_components(self.cfg)  # plugin mistakes surface here, as ConfigError
        store = Store(self.work_dir)
        store.reap_dead_runs()
        now = time.time()
        fields = dict(config_path=os.path.abspath(self.cfg.source),
                      config_yaml=yaml.safe_dump(self.cfg.raw, sort_keys=False, allow_unicode=True),
                      code_dir=self.code_dir, source_dir=self.source_dir, task_dir=self.task_dir,
                      reward_attribute=self.cfg.reward_attribute, optimize_mode=self.cfg.optimize_mode,
                      started=now, heartbeat=now, host=socket.gethostname(), pid=os.getpid(),
                      compare=self.cfg.compare_label)
        if self.resume:
            old = store.require_task(self.task)
            _check_same_mode(self.task, old.get("config_yaml"), self.cfg)
            if old["status"] == RUNNING:
                raise UserError(f"task {self.task} is still running (pid {old['pid']} on {old['host']});"
                                f" stop it first with `gml-ray ctl stop --task {self.task}`")
            # What an earlier run could not write (its disk was full) goes in first.
            for path, writes in load_spills(self.work_dir, self.task):
                store.replay(writes)
                os.remove(path)
                self.loaded_spills.append(path)
            old = store.require_task(self.task)
            # Every earlier attempt's run time, a crashed one's (to its last heartbeat) included.
            before = run_time(old, now=old.get("heartbeat") or now) or 0.0
            store.update_task(self.task, status=RUNNING, ended=None, stop_requested=0, message=None,
                              scalar_columns=json.dumps(self.cfg.scalar_columns),
                              elapsed_before=before, **fields)
        else:
            if store.get_task(self.task) is not None:
                raise UserError(f"task {self.task!r} already exists: add --resume to continue it, "
                                f"or pick another --task name")
            store.create_task(self.task, scalar_columns=self.cfg.scalar_columns, **fields)
        try:
            os.makedirs(self.task_dir, exist_ok=True)
            if os.path.isfile(self.cfg.source):
                shutil.copy(self.cfg.source, os.path.join(self.task_dir, "search_config.yaml"))
            if self.snapshot:
                snapshot_code(self.source_dir, self.code_dir, self.symlink_paths,
                              exclude=[self.work_dir])
        except BaseException as exc:
            store.update_task(self.task, status=ERROR, ended=time.time(), message=str(exc)[:500])
            raise
        self.store = store
        return store

    def run(self, on_progress: Callable[[], None] | None = None,
            progress_every: float = 0.5, on_notice: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Run the task to its end and return a summary (status, counts, best reward, reason).

        Ctrl+C stops it: running and pending jobs become ERROR, then KeyboardInterrupt is raised.
        SIGTERM (a batch scheduler, ``ray job stop``, ``kill``) does the same and raises
        :class:`Terminated` (a KeyboardInterrupt).
        """
        from ..runtime import check_resources, init_ray, pool_size_note
        from .factory import job_kind
        from .job import DEFAULT_RESOURCES

        store = self.store or self.prepare()
        # The first Ctrl+C (or SIGTERM) only sets a flag (a KeyboardInterrupt inside a Ray call
        # can leave the client stuck); the loop then asks the scheduler to stop. A second one
        # aborts. Our SIGTERM handler replaces Ray's, which would dump its stack and exit 1.
        hits: list[tuple[float, int]] = []

        def on_signal(signum: int, frame: Any) -> None:
            hits.append((time.time(), signum))
            if len(hits) > 1:
                raise Terminated(_SIGNAL_REASON[hits[0][1]]) if hits[0][1] == signal.SIGTERM \
                    else KeyboardInterrupt

        in_main = threading.current_thread() is threading.main_thread()
        old_handlers = {sig: signal.signal(sig, on_signal) for sig in _SIGNAL_REASON} if in_main else {}
        started_ray = False
        actor = None
        try:
            started_ray = init_ray(self.address, self.num_cpus, self.num_gpus)
            if in_main:  # ray.init installs handlers of its own
                for sig in _SIGNAL_REASON:
                    signal.signal(sig, on_signal)
            try:
                check_resources(self.cfg.resources)
            except UserError as exc:
                store.update_task(self.task, status=ERROR, ended=time.time(), message=str(exc))
                raise
            cfg = self.cfg
            if job_kind(cfg.job_kind).pooled:
                # A pool actor the cluster cannot hold never starts, and its jobs never end.
                size, note = pool_size_note(cfg.resources or DEFAULT_RESOURCES, cfg.parallel_size)
                if note is not None:
                    cfg = dataclasses.replace(cfg, parallel_size=size)
                    (on_notice or log.warning)(note)
            node_id = ray.get_runtime_context().get_node_id()
            strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)
            actor = SchedulerActor.options(  # type: ignore[attr-defined]  # a Ray actor class
                scheduling_strategy=strategy).remote(
                cfg, self.task, self.work_dir, self.task_dir, self.code_dir, self.resume)
            ref = actor.run.remote()
            interrupted: float | bool = False
            reason = ""
            problem_ref, problem, asked = None, None, 0.0
            try:
                while True:
                    ready, _ = ray.wait([ref], timeout=progress_every)
                    if on_notice is not None:  # store trouble, told once per episode
                        if problem_ref is None and time.time() - asked > 2.0:
                            problem_ref, asked = actor.store_problem.remote(), time.time()
                        if problem_ref is not None and ray.wait([problem_ref], timeout=0)[0]:
                            now_problem = ray.get(problem_ref)
                            problem_ref = None
                            if now_problem and not problem:
                                on_notice(now_problem)
                            problem = now_problem
                    if hits and not interrupted:
                        interrupted, reason = hits[0][0], _SIGNAL_REASON[hits[0][1]]
                        actor.stop.remote(ERROR, reason)
                    if on_progress is not None:
                        on_progress()
                    if ready:
                        break
            finally:
                for sig, old in old_handlers.items():
                    signal.signal(sig, old)
                old_handlers = {}
            try:
                summary = ray.get(ref)
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, UserError):
                    raise cause from None
                message = _error_text(cause if isinstance(cause, BaseException) else exc)
                store.mark_active_jobs(self.task, ERROR, "the scheduler failed")
                store.update_task(self.task, status=ERROR, ended=time.time(), message=message)
                raise RuntimeError(f"task {self.task} failed: {message}") from None
            if interrupted:
                store.mark_cancelled_as(self.task, ERROR, interrupted - 5.0, reason)
                raise Terminated(reason) if hits[0][1] == signal.SIGTERM else KeyboardInterrupt
            return summary
        except KeyboardInterrupt as exc:
            reason = str(exc) if isinstance(exc, Terminated) else _SIGNAL_REASON[signal.SIGINT]
            store.mark_active_jobs(self.task, ERROR, reason)
            store.update_task(self.task, status=ERROR, ended=time.time(), message=reason)
            raise
        finally:
            for sig, old in old_handlers.items():
                signal.signal(sig, old)
            if actor is not None:
                ray.kill(actor)
            if started_ray:
                ray.shutdown()


class MujocoScheduler(NaiveScheduler):
    """The manual's MujocoScheduler: :class:`NaiveScheduler` with ``benchmark=True`` (same loop;
    its jobs are :class:`~gml_ray.mujoco.MujocoJob` evaluations on the run's rollout actors)."""

    def __init__(self, work_dir: str, config: TaskConfig | dict | str, symlink_paths: Any = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("benchmark", True)
        super().__init__(work_dir, config, symlink_paths, **kwargs)
