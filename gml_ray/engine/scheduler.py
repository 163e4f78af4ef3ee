"""The driver side of a run: ``NaiveScheduler(work_dir, config, symlink_paths).run()`` (manual 3.1).

It records the task, snapshots its code, starts or joins Ray, and runs the loop
(:class:`~gml_ray.engine.loop.SchedulerCore`) inside :class:`SchedulerActor`, a Ray actor on the
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
import sys
import threading
import time
from typing import Any, Callable

import ray
import ray.util.scheduling_strategies
import yaml

from gml_ray.config.task import TaskConfig, load_config, parse_config
from gml_ray.engine.components import build_components
from gml_ray.engine.liveness import RunWatch, save_lost_store
from gml_ray.engine.loop import WAKE_S, SchedulerCore
from gml_ray.engine.resume import check_same_mode, config_change
from gml_ray.engine.snapshot import snapshot_code
from gml_ray.engine.warm_start import resolve_sources
from gml_ray.errors import EnvironmentFault, NothingToDo, Terminated, UserError
from gml_ray.store.backlog import load_spills
from gml_ray.store.schema import check_task_name, db_path, run_time
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus, TaskStatus

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

    def notes(self) -> tuple[str | None, list[str]]:
        return self.core.notes()

    def stop(self, status: JobStatus, reason: str) -> None:
        self.core.external_stop(status, reason)

    def preempt(self, reason: str, grace: float) -> None:
        self.core.preempt(reason, grace)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_text(exc: BaseException) -> str:
    """One line for an exception: its type and message, colour codes removed."""
    text = " ".join(_ANSI.sub("", str(exc)).split())
    return f"{type(exc).__name__}: {text}"[:1000]


def _still_running(task: dict[str, Any]) -> UserError:
    return UserError(f"task {task['name']} is still running (pid {task['pid']} on {task['host']}); "
                     f"stop it first with `gml-ray ctl stop --task {task['name']}`")


def _exists(task: str) -> UserError:
    return UserError(f"task {task!r} already exists: add --resume to continue it, or pick "
                     f"another --task name")


def _nothing_ran(store: Store, task: dict[str, Any]) -> bool:
    """Whether a task ended ERROR before any job was made (no Ray, a bad address or symlink):
    such a task does not keep its name from a fixed run."""
    return task["status"] == TaskStatus.ERROR and not store.status_counts(task["name"])


def _ended_before(store: Store, task: str, when: float | None) -> bool:
    """Whether ``task``'s row says it had ended before ``when`` (a signal's time; None: unknown)."""
    row = store.get_task(task)
    ended = row.get("ended") if row is not None else None
    return when is not None and row is not None and row["status"] != TaskStatus.RUNNING \
        and ended is not None and ended <= when


def _interrupt_reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, Terminated) else "interrupted (Ctrl+C)"


def _interrupt(hits: list[tuple[float, int]]) -> KeyboardInterrupt:
    """What the first signal of ``hits`` raises: Terminated for SIGTERM, else KeyboardInterrupt."""
    return Terminated(_SIGNAL_REASON[signal.SIGTERM]) if hits[0][1] == signal.SIGTERM \
        else KeyboardInterrupt()


_SIGNAL_REASON: dict[int, str] = {signal.SIGINT: "interrupted (Ctrl+C)", signal.SIGTERM: "terminated (SIGTERM)"}


class NaiveScheduler:
    """Runs one task to its end: ``NaiveScheduler(work_dir, config, symlink_paths).run()``.

    ``config`` is a parsed :class:`TaskConfig`, a config dict (as the manual passes it) or the path
    of a ``search_config.yaml``. Jobs run in a snapshot of ``code_dir`` (default: the config's
    directory) under the task dir, with ``symlink_paths`` linked instead of copied. Ray is joined
    if it is running, else started locally. ``resume=True`` continues an existing task.
    ``warm_start_from`` (comma-separated task names or archives): the searcher first learns their
    results (:mod:`.warm_start`).
    """

    def __init__(self, work_dir: str, config: TaskConfig | dict | str, symlink_paths: Any = None, *,
                 task: str | None = None, code_dir: str | None = None, address: str | None = None,
                 num_cpus: int | None = None, num_gpus: int | None = None, resume: bool = False,
                 snapshot: bool = True, mode: str | None = None,
                 changed_config: bool = False, warm_start_from: str | None = None) -> None:
        if isinstance(config, str):
            config = load_config(config, mode=mode)
        elif isinstance(config, dict):
            config = parse_config(config, "config", code_dir or os.getcwd(), mode=mode)
        elif mode is not None and config.mode != mode:  # parsed in another mode: check it again
            config = parse_config(config.raw, config.source, config.base_dir, mode=mode)
        self.cfg: TaskConfig = config
        if config.mode is not None:
            snapshot = False  # a job mode runs no template and no function: no code to snapshot
        self.work_dir = os.path.abspath(work_dir)
        self.symlink_paths = list(symlink_paths or [])
        self.task = check_task_name(task or time.strftime("task_%Y%m%d_%H%M%S"))
        self.source_dir = os.path.abspath(code_dir or config.base_dir)
        self.task_dir = os.path.join(self.work_dir, "tasks", self.task)
        self.code_dir = os.path.join(self.task_dir, "code") if snapshot else self.source_dir
        self.snapshot, self.resume = snapshot, resume
        self.changed_config = changed_config  # --resume may go on with an edited config
        if warm_start_from and resume:
            raise UserError("--warm-start-from starts a new task; a resumed task keeps the warm start it began with")
        self.warm_start_from = warm_start_from
        self.watch: RunWatch | None = None  # the heartbeat and the store file's watch
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.store: Store | None = None
        self.loaded_spills: list[str] = []  # spill files of earlier runs that --resume wrote

    def prepare(self) -> Store:
        """Validate plugins, claim the task in the store and snapshot its code (before Ray starts).

        The check and the claim are one write transaction: of several runs started at once for
        one task name (``--resume`` or not), exactly one goes on; the others get a UserError.
        Raises :class:`~gml_ray.errors.NothingToDo` for ``--resume`` of a FINISHED task that has
        nothing left to run."""
        build_components(self.cfg)  # plugin mistakes surface here, as ConfigError
        if self.resume and not os.path.exists(db_path(self.work_dir)):
            raise UserError(f"no task named {self.task!r} to resume: {self.work_dir} holds no "
                            f"gml-ray store (check --workdir)")
        store = Store(self.work_dir)
        store.reap_dead_runs()
        warm = resolve_sources(store, self.task, self.warm_start_from) if self.warm_start_from else None
        now = time.time()
        config_yaml = yaml.safe_dump(self.cfg.raw, sort_keys=False, allow_unicode=True)
        fields = dict(config_path=os.path.abspath(self.cfg.source), config_yaml=config_yaml,
                      code_dir=self.code_dir, source_dir=self.source_dir, task_dir=self.task_dir,
                      reward_attribute=self.cfg.reward_attribute, optimize_mode=self.cfg.optimize_mode,
                      started=now, heartbeat=now, host=socket.gethostname(), pid=os.getpid(),
                      compare=self.cfg.compare_label,
                      objectives=self.cfg.outcome.to_json() if self.cfg.outcome is not None else None)
        # Refused without the write lock first (a live run may hold it for a while), then
        # checked again and claimed under it.
        old = store.get_task(self.task)
        if self.resume and old is not None and old["status"] == TaskStatus.RUNNING:
            raise _still_running(old)
        if not self.resume and old is not None and not _nothing_ran(store, old):
            raise _exists(self.task)
        with store.transaction():
            if self.resume:
                self._claim_for_resume(store, fields, now)
            else:
                old = store.get_task(self.task)
                if old is not None and not _nothing_ran(store, old):
                    raise _exists(self.task)
                if old is not None:  # it failed before any job ran: its name is free again
                    store.delete_task(self.task)
                store.create_task(self.task, scalar_columns=self.cfg.scalar_columns, **fields,
                                  warm_start=json.dumps({"sources": warm}) if warm else None)
        self.store = store
        self.watch = RunWatch(store, self.task)
        try:
            os.makedirs(self.task_dir, exist_ok=True)
            if os.path.isfile(self.cfg.source):
                shutil.copy(self.cfg.source, os.path.join(self.task_dir, "search_config.yaml"))
            if self.snapshot:
                snapshot_code(self.source_dir, self.code_dir, self.symlink_paths,
                              exclude=[self.work_dir])
        except BaseException as exc:
            self.abandon(_interrupt_reason(exc) if isinstance(exc, KeyboardInterrupt) else str(exc))
            raise
        return store

    def _claim_for_resume(self, store: Store, fields: dict[str, Any], now: float) -> None:
        """Inside prepare's transaction: check that the task can be resumed and mark it RUNNING."""
        old = store.require_task(self.task)
        check_same_mode(self.task, old.get("config_yaml"), self.cfg)
        if old["status"] == TaskStatus.RUNNING:
            raise _still_running(old)
        changed, any_change = config_change(old.get("config_yaml"), fields["config_yaml"])
        if changed and not self.changed_config:
            raise UserError(f"the config differs from the one task {self.task} ran (at {changed}): "
                            f"resume with the config it ran, or add --changed-config to go on "
                            f"with this one")
        counts = store.status_counts(self.task)
        if old["status"] == TaskStatus.FINISHED and not any_change and not counts.get(JobStatus.ERROR) \
                and not load_spills(self.work_dir, self.task):
            raise NothingToDo(f"task {self.task} is FINISHED ({sum(counts.values())} jobs, none "
                              f"ERROR): nothing to resume")
        # What an earlier run could not write (its disk was full) goes in first.
        for path, writes in load_spills(self.work_dir, self.task):
            store.replay(writes)
            os.remove(path)
            self.loaded_spills.append(path)
        old = store.require_task(self.task)
        # Every earlier attempt's run time, a crashed one's (to its last heartbeat) included.
        before = run_time(old, now=old.get("heartbeat") or now) or 0.0
        store.update_task(self.task, status=TaskStatus.RUNNING, ended=None, stop_requested=0, message=None,
                          scalar_columns=json.dumps(self.cfg.scalar_columns),
                          elapsed_before=before, **fields)

    @property
    def store_lost(self) -> str | None:
        """Why the store this run opened is gone (deleted or replaced), once it is."""
        return self.watch.lost if self.watch is not None else None

    def abandon(self, message: str) -> None:
        """The command ends before or after the loop ran (a signal while Ray starts or stops, a
        failed snapshot): a task still RUNNING becomes ERROR with ``message``, its active jobs
        too. A task in which no job ran frees its name."""
        if self.watch is not None:
            self.watch.stop()
        store = self.store
        if store is None:
            return
        task = store.get_task(self.task)
        if task is not None and task["status"] == TaskStatus.RUNNING:
            with store.transaction():
                store.mark_active_jobs(self.task, JobStatus.ERROR, message)
                store.update_task(self.task, status=TaskStatus.ERROR, ended=time.time(), message=message[:500])

    def run(self, on_progress: Callable[[], None] | None = None,
            progress_every: float = 0.5, on_notice: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Run the task to its end and return a summary (status, counts, best reward, reason).

        Ctrl+C stops it: running and pending jobs become ERROR, then KeyboardInterrupt is raised.
        SIGTERM (a batch scheduler, ``ray job stop``, ``kill``) does the same and raises
        :class:`Terminated` (a KeyboardInterrupt), at any moment of the run, Ray's start and
        end included, except that a running job that announced checkpoints is first given
        ``scheduler.checkpoint.preempt_grace`` to announce its next one and ends PAUSED at it
        (``--resume`` goes on from there); a second signal ends everything at once. A store deleted or replaced during the run ends it: its jobs become
        ERROR, the store as the run saw it is saved under ``<work_dir>/spill/`` and
        :class:`~gml_ray.errors.EnvironmentFault` names that file.
        """
        from gml_ray.engine.factory import job_kind
        from gml_ray.engine.job import DEFAULT_RESOURCES
        from gml_ray.engine.runtime import check_resources, init_ray, pool_size_note
        from gml_ray.engine.sigterm_guard import sigterm_kept

        store = self.store or self.prepare()
        # The first Ctrl+C (or SIGTERM) only sets a flag (a KeyboardInterrupt inside a Ray call
        # can leave the client stuck); the loop then asks the scheduler to stop. A second one
        # aborts. Our SIGTERM handler replaces Ray's, which would exit at once without a word.
        hits: list[tuple[float, int]] = []

        def on_signal(signum: int, frame: Any) -> None:
            hits.append((time.time(), signum))
            if len(hits) > 1:
                raise _interrupt(hits)

        def check_hits() -> None:  # before the loop runs: a signal ends the run here
            if hits:
                raise _interrupt(hits)

        in_main = threading.current_thread() is threading.main_thread()
        old_handlers = {sig: signal.signal(sig, on_signal) for sig in _SIGNAL_REASON} if in_main else {}
        owns_ray = not ray.is_initialized()
        actor = None
        try:
            with sigterm_kept():  # Ray's own SIGTERM handling would lose a signal while it starts
                init_ray(self.address, self.num_cpus, self.num_gpus)
            if in_main:  # what else ray.init may have installed
                for sig in _SIGNAL_REASON:
                    signal.signal(sig, on_signal)
            check_hits()
            check_resources(self.cfg.resources)
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
            lost = False
            problem_ref, problem, asked = None, None, 0.0
            while True:
                ready, _ = ray.wait([ref], timeout=progress_every)
                if on_notice is not None:  # store trouble, told once per episode
                    if problem_ref is None and time.time() - asked > 2.0:
                        problem_ref, asked = actor.notes.remote(), time.time()
                    if problem_ref is not None and ray.wait([problem_ref], timeout=0)[0]:
                        now_problem, notices = ray.get(problem_ref)
                        problem_ref = None
                        for notice in notices:
                            on_notice(notice)
                        if now_problem and not problem:
                            on_notice(now_problem)
                        problem = now_problem
                if hits and not interrupted:
                    interrupted, reason = hits[0][0], _SIGNAL_REASON[hits[0][1]]
                    if hits[0][1] == signal.SIGTERM:  # preempted: jobs pause at their next checkpoint
                        actor.preempt.remote(reason, self.cfg.checkpoint.preempt_grace)
                    else:
                        actor.stop.remote(JobStatus.ERROR, reason)
                if self.store_lost and not lost:
                    lost = True
                    actor.stop.remote(JobStatus.ERROR, self.store_lost)
                if on_progress is not None:
                    on_progress()
                if ready:
                    break
            try:
                summary = ray.get(ref)
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, (UserError, EnvironmentFault)):
                    raise cause from None
                message = _error_text(cause if isinstance(cause, BaseException) else exc)
                store.mark_active_jobs(self.task, JobStatus.ERROR, "the scheduler failed")
                store.update_task(self.task, status=TaskStatus.ERROR, ended=time.time(), message=message)
                raise RuntimeError(f"task {self.task} failed: {message}") from None
            if self.store_lost:
                saved = save_lost_store(store, self.task)
                raise EnvironmentFault(f"{self.store_lost}: task {self.task} was stopped (its "
                                       f"running jobs ERROR); the store as the run saw it, every "
                                       f"task's rows, is saved as {saved}: move it to "
                                       f"{store.path} (moving aside what is there), then "
                                       f"`gml-ray run ... --resume`")
            for notice in summary.pop("notices", []):  # those the loop above had not fetched yet
                (on_notice or log.warning)(notice)
            if interrupted:
                store.mark_cancelled_as(self.task, JobStatus.ERROR, interrupted - 5.0, reason)
                raise _interrupt(hits)
            return summary
        except KeyboardInterrupt as exc:
            reason = _interrupt_reason(exc)
            # A task whose end was written before the signal came keeps it (FINISHED stays
            # FINISHED); one the signal cut short (stopped, preempted) becomes ERROR for --resume.
            if not self.store_lost and not _ended_before(store, self.task, hits[0][0] if hits else None):
                store.mark_active_jobs(self.task, JobStatus.ERROR, reason)
                store.update_task(self.task, status=TaskStatus.ERROR, ended=time.time(), message=reason)
            raise
        except UserError as exc:  # no node can run a job, a bad --address: nothing ran
            store.update_task(self.task, status=TaskStatus.ERROR, ended=time.time(), message=str(exc)[:500])
            raise
        finally:
            if self.watch is not None:
                self.watch.stop()
            # Our handler stays while Ray stops (a signal now must not cut its shutdown short),
            # also where Ray puts the default action back at the C level (sigterm_kept).
            try:
                if actor is not None:
                    ray.kill(actor)
                if owns_ray:
                    with sigterm_kept():
                        ray.shutdown()
            finally:
                for sig, old in old_handlers.items():
                    signal.signal(sig, old)
            if hits and sys.exc_info()[0] is None:
                raise _interrupt(hits)  # a signal while Ray stopped, after the task had ended
