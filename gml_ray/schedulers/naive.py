"""The scheduler: a Ray actor that runs a task's search loop, and the driver-side NaiveScheduler.

Loop (inside the actor): ask the searcher for a config → filter criterion → launch a Job (a Ray
task) while fewer than ``parallel_size`` run → wait, with one ``ray.wait``, for a job to end or for
messages from jobs (start, scalars) → write them to the store, update rewards, feed the assessor →
stop criteria → tell the searcher each ended job's reward. The actor lives on the driver's node
because the store (SQLite) is a local file there.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import resource
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any, Callable

import ray
import ray.util.scheduling_strategies
import yaml

from .. import render, tensorboard
from ..assessors import AssessResult
from ..config import TaskConfig, load_config, parse_config
from ..errors import UserError
from ..plugins import build_components
from ..snapshot import snapshot_code
from ..space import config_key
from ..store import check_task_name  # noqa: F401 - re-exported
from ..store import (EARLY_STOPPED, ERROR, FINISHED, FLAG_OK, KILLED, PENDING, RUNNING, Store, classify,
                     run_time)
from .channel import SCALARS, START, WAKE, ChannelName, MessageChannel
from .job import KILL_GRACE_S, CommandJob, FunctionJob, Job, TrialActor
from .pool import ActorPool

log = logging.getLogger("gml_ray.scheduler")

WAKE_S = 0.5  # the loop wakes at least this often: ctl stop requests, heartbeat, time limits
DRAIN_GRACE_S = 5.0  # how long an ended job may wait for its last messages
SLOW_SEARCHER_S = 0.01  # a searcher's answer took longer: it is asked outside the store's lock
SAVE_EVERY = 20_000  # scalar rows kept in memory at most before they are written


def job_name(job_id: int) -> str:
    return f"job_{job_id:04d}"


class SchedulerCore:
    """The search loop and its state. Stop criteria receive this object as ``scheduler``:
    ``is_stop``, ``num_launched``, ``best_reward``, ``optimize_mode``, ``jobs``, ``running``.
    """

    def __init__(self, cfg: TaskConfig, task: str, work_dir: str, task_dir: str, code_dir: str,
                 resume: bool = False) -> None:
        self.cfg, self.task, self.work_dir = cfg, task, work_dir
        self.task_dir, self.code_dir = task_dir, code_dir
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        self.store = Store(work_dir)
        comps = build_components(cfg)
        self.searcher = comps.searcher
        self.stop_criterion = comps.stop_criterion
        self.filter_criterion = comps.filter_criterion
        self.assessor = comps.assessor
        self.space = cfg.search_space()
        self.reward_attribute, self.optimize_mode = cfg.reward_attribute, cfg.optimize_mode
        self.parallel_size = cfg.parallel_size
        # The queue lives beside the scheduler (the driver's node): jobs' nodes may come and go.
        here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)
        name = f"gml-channel-{task}-{uuid.uuid4().hex[:12]}"
        self.channel = MessageChannel.options(num_cpus=0, scheduling_strategy=here, name=name).remote()
        self.channel_name = ChannelName(name, ray.get_runtime_context().namespace)
        self._file_bases = cfg.file_bases  # loaded once, by the config parser
        self.is_stop = False
        self.stop_reason = ""
        self.exhausted = False
        self.num_launched = 0
        self.num_filtered = 0
        self.best_reward: float | None = None
        self.best_job: str | None = None
        self.jobs: dict[int, Job] = {}
        self.running: dict[int, Job] = {}
        self.start_time = time.time()
        self._kill: tuple[str, str] | None = None  # (status, message) for running jobs
        self._external: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._next_id = 1
        self._ending: dict[int, float] = {}  # job id -> when its task ended (waiting for messages)
        self._received: dict[int, int] = {}
        self._history: dict[int, list[dict]] = {}
        self._latest: dict[int, dict[str, Any]] = {}  # running job id -> {tag: last value}
        self._unsaved: list[tuple] = []  # scalar rows not written to the store yet
        self._row_updates: dict[int, dict[str, Any]] = {}  # ended job id -> job row fields to write
        self._slow_searcher = True  # until its first answer says otherwise
        self._last_wake = 0.0
        self.ingested, self.ingest_s = 0, 0.0  # scalars written, and the time it took
        self.elapsed_before = 0.0  # run time of earlier attempts of this task (resume)
        self._retries: dict[int, int] = {}  # job id -> runs again after a lost node
        self._reruns: list[Job] = []  # ERROR jobs of an earlier attempt, run again first
        self._done_keys: set[str] = set()  # configs an earlier attempt already ran
        self.pool: ActorPool | None = None  # made by run(): its actors hold resources
        if resume:
            self._restore()

    def _restore(self) -> None:
        """Rebuild the state of an interrupted task from the store (``run --resume``).

        ERROR jobs (and jobs a dead run left PENDING/RUNNING) are queued to run again in their own
        job dirs with the next attempt number; every other job's result is told to the searcher,
        and its config is never launched again. ``max_tries`` and ``time_limits`` count the
        earlier attempts too.
        """
        task = self.store.require_task(self.task)
        self.elapsed_before = float(task.get("elapsed_before") or 0.0)
        self.store.mark_active_jobs(self.task, ERROR, "interrupted (the run ended)")
        for row in self.store.jobs(self.task):
            config, job_id = row["config"], row["job_id"]
            self._next_id = max(self._next_id, job_id + 1)
            self.num_launched += 1
            if row["status"] == ERROR:
                job = self._make_job(config, job_id, attempt=int(row["attempt"] or 1) + 1)
                self._reruns.append(job)
                self._done_keys.add(config_key(config))
                continue
            self._done_keys.add(config_key(config))
            if row["reward"] is not None:
                self.searcher.update(config, row["reward"])
                if self.better(row["reward"], self.best_reward):
                    self.best_reward, self.best_job = row["reward"], row["name"]
            else:
                self.searcher.job_failed(config, row["status"])
        log.info("resumed: %d earlier jobs, %d to run again", self.num_launched, len(self._reruns))

    # ---- API for criteria and the driver ---------------------------------------------------------

    def request_stop(self, reason: str, kill_running: bool = False, status: str = KILLED) -> None:
        """Stop launching jobs; with ``kill_running`` also end running ones with ``status``."""
        if not self.is_stop:
            self.stop_reason = reason
            log.info("stopping: %s", reason)
        self.is_stop = True
        if kill_running and self._kill is None:
            self._kill = (status, reason)

    def external_stop(self, status: str, reason: str) -> None:
        """Called from another thread (the driver's Ctrl+C, ``ctl stop``)."""
        with self._lock:
            self._external = (status, reason)
        self.channel.put.remote((WAKE, 0, 0, None))

    def better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.optimize_mode == "maximize" else a < b)

    # ---- the loop ----------------------------------------------------------------------------------

    def _make_pool(self) -> ActorPool | None:
        """Reusable actors, one per parallel slot: the MuJoCo benchmark's rollout actors, or the
        workers of function trials (a call on a waiting actor costs half a Ray task's dispatch)."""
        cfg = self.cfg
        if cfg.benchmark:
            from ..mujoco.rollout import RolloutPool
            return RolloutPool(cfg.func_type or "", cfg.parallel_size, cfg.resources, cfg.rollouts,
                               cfg.reward_attribute)
        if cfg.function:
            return ActorPool(TrialActor, cfg.parallel_size, cfg.resources)
        return None

    def run(self) -> dict[str, Any]:
        status = FINISHED
        self.stop_criterion.before_run(self)
        pending_get = self.channel.get_all.remote()
        ready: list | None = None
        self.pool = self._make_pool()
        try:
            while True:
                # One commit per round; a failing plugin does not undo what the round stored.
                with self.store.transaction(keep_on_error=True):
                    if ready is not None:
                        pending_get = self._handle(ready, pending_get)
                        self.stop_criterion.check(self)
                        self._apply_stops()
                    self._launch()
                    # Scalars of ended jobs are written after their successors started: the
                    # workers do not wait for SQLite.
                    self._save_scalars()
                if not self.running and (self.is_stop or self.exhausted):
                    break
                ready = self._ready(pending_get)
            if self._external is not None:
                status = self._external[0]
        except BaseException as exc:
            status = ERROR
            self.stop_reason = f"scheduler failed: {type(exc).__name__}: {exc}"
            log.exception("scheduler failed")
            self._abort_running(ERROR, self.stop_reason)
            raise
        finally:
            if self.pool is not None:  # no pool actor outlives its run
                self.pool.shutdown()
            try:
                self.stop_criterion.after_run(self)
            except Exception:  # noqa: BLE001 - a plugin's after_run must not hide the result
                log.exception("stop criterion after_run failed")
            try:
                self._save_scalars()
                self.store.update_task(self.task, status=status, ended=time.time(),
                                       message=self.stop_reason or None)
            except Exception:  # noqa: BLE001
                log.exception("could not record the task's end")
                raise
            log.info("task ended: %s %s", status, self.stop_reason)
        return self.summary(status)

    def summary(self, status: str) -> dict[str, Any]:
        return {"task": self.task, "status": status, "reason": self.stop_reason,
                "launched": self.num_launched, "filtered": self.num_filtered,
                "counts": self.store.status_counts(self.task), "best_reward": self.best_reward,
                "best_job": self.best_job,
                "elapsed": self.elapsed_before + time.time() - self.start_time,
                "scheduler_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "scalars": self.ingested, "ingest_s": self.ingest_s}

    def _launch(self) -> None:
        misses = 0
        while self._reruns and not self.is_stop and len(self.running) < self.parallel_size:
            self._start(self._reruns.pop(0))
        while not self.is_stop and not self.exhausted and len(self.running) < self.parallel_size:
            self.stop_criterion.before_iter(self)
            if self.is_stop:
                break
            config = self._next_config()
            if config is None:
                self.exhausted = True
                break
            if self._done_keys and config_key(config) in self._done_keys:
                continue  # an earlier attempt ran it; the searcher already knows its result
            job = self._make_job(config, self._next_id)
            if self.filter_criterion is not None and self.filter_criterion.filter(job):
                self.num_filtered += 1
                self.searcher.job_failed(config, "FILTERED")
                misses += 1
                if misses >= 100_000:
                    self.request_stop("the filter criterion dropped 100000 configs in a row")
                continue
            self._start(job)
            self.num_launched += 1
            self.stop_criterion.after_iter(self)

    def _next_config(self) -> dict | None:
        """The searcher's next config. A searcher that thinks for long (a GP, LA-MCTS) does so
        without holding the store's write lock, which other runs and ``ctl stop`` wait for."""
        if self._slow_searcher:
            with self.store.unlocked():
                return self._timed_get_config()
        return self._timed_get_config()

    def _timed_get_config(self) -> dict | None:
        t0 = time.perf_counter()
        config = self.searcher.get_config()
        self._slow_searcher = time.perf_counter() - t0 > SLOW_SEARCHER_S
        return config

    def _make_job(self, config: dict, job_id: int, attempt: int = 1) -> Job:
        name = job_name(job_id)
        job_dir = os.path.join(self.task_dir, "jobs", name)
        common = dict(job_dir=job_dir, cwd=self.code_dir, job_id=job_id, attempt=attempt,
                      generate_log=self.cfg.generate_log, collect_metrics=self.cfg.collect_metrics,
                      env={"GML_TASK": self.task})
        if self.cfg.benchmark:
            from ..mujoco.job import MujocoJob, policy_vector
            return MujocoJob(self.cfg.func_type or "", name, policy_vector(config, self.cfg.arg_names),
                             render.arg_dict(self.space, config), config=config, pool=self.pool, rollouts=self.cfg.rollouts,
                             reward_attribute=self.reward_attribute, resources=self.cfg.resources,
                             channel=self.channel_name, time_limit=self.cfg.stop.time_limits_per_job,
                             **common)
        rendered = render.render_job(self.space, config, job_dir,
                                     None if self.cfg.function else self.cfg.template, self._file_bases)
        if self.cfg.function:
            job: Job = FunctionJob(self.cfg.function, name, rendered.values, rendered.arg_dict, config=config,
                                   resources=self.cfg.resources, channel=self.channel_name,
                                   pool=self.pool, time_limit=self.cfg.stop.time_limits_per_job,
                                   **common)
        else:
            job = CommandJob(rendered.command or "", name, rendered.arg_dict, config=config,
                             resources=self.cfg.resources, channel=self.channel_name,
                             time_limit=self.cfg.stop.time_limits_per_job, **common)
        job.rendered = rendered
        return job

    def _start(self, job: Job) -> None:
        spec = job.spec
        if job.rendered is not None:  # File args' copies are written when the job starts
            job.rendered.write_files()
        job.start()
        # A job on a pool actor runs at once: its row is written RUNNING in one statement.
        status, started = (RUNNING, time.time()) if job.starts_running and job.mark_running() \
            else (PENDING, None)
        if spec.attempt > 1:
            self.store.update_job(self.task, spec.job_id, status=status, attempt=spec.attempt,
                                  reward=None, started=started, ended=None, exit_code=None,
                                  message=None, command=spec.command or spec.function)
        else:
            self._next_id = max(self._next_id, spec.job_id + 1)
            self.store.add_job(self.task, spec.job_id, spec.name, job.config, job.arg_dict,
                               spec.command or spec.function, spec.job_dir, status=status,
                               started=started)
        log.info("started %s (attempt %d): %s", spec.name, spec.attempt, spec.command or job.arg_dict)
        self.jobs[spec.job_id] = job
        self.running[spec.job_id] = job
        self._received[spec.job_id] = 0

    def _ready(self, pending_get: Any) -> list:
        """Wait (at most ``WAKE_S``) until a job ends or messages come; returns what is ready."""
        timeout = WAKE_S
        left = getattr(self.stop_criterion, "seconds_left", lambda: None)()
        if left is not None:
            timeout = min(timeout, left + 0.01)
        if self._ending:
            timeout = min(timeout, 0.1)
        refs = [pending_get] + [j.ref for j in self.running.values() if j.outcome is None]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        return ready

    def _handle(self, ready: list, pending_get: Any) -> Any:
        """Take in the messages and the ended jobs; returns the channel call to wait on next."""
        ready_set = set(ready)
        if pending_get in ready_set:
            self._on_messages(ray.get(pending_get))
            pending_get = self.channel.get_all.remote()
        for job_id, job in list(self.running.items()):
            if job.outcome is None and job.ref in ready_set:
                outcome = job.resolve()
                if outcome.get("lost") and self._retry(job):
                    continue
                if outcome.get("scalars"):  # reports a job returned instead of sending
                    self._ingest(job, outcome.pop("scalars"), job.spec.attempt)
                self._ending[job_id] = time.time()
        now = time.time()
        for job in self.running.values():
            why = job.overdue(now)
            if why:  # stuck in C code, or it caught its interrupt
                log.warning("%s did not stop within %gs (%s): ending its process", job.name,
                            KILL_GRACE_S, why)
                job.end_actor(why)
        for job_id, ended_at in list(self._ending.items()):
            job = self.running[job_id]
            sent = job.outcome.get("sent") if job.outcome else None
            if (sent is not None and self._received[job_id] >= sent) or now - ended_at > (
                    DRAIN_GRACE_S if sent is not None else 1.0):
                del self._ending[job_id]
                self._finish(job)
        if now - self._last_wake >= WAKE_S:
            self._last_wake = now
            self.store.heartbeat(self.task)
            for handler in logging.getLogger().handlers:
                handler.flush()
            if self.store.stop_requested(self.task):
                self.external_stop(KILLED, "stopped by `ctl stop`")
        return pending_get

    def _retry(self, job: Job) -> bool:
        """Run a job whose node or worker died again (``task.max_retries``); False if none left."""
        retries = self._retries.get(job.spec.job_id, 0)
        if retries >= self.cfg.max_retries or self.is_stop:
            return False
        self._retries[job.spec.job_id] = retries + 1
        log.warning("%s lost its node or worker (%s); running it again (%d/%d)", job.name,
                    job.outcome.get("message") if job.outcome else "", retries + 1, self.cfg.max_retries)
        del self.running[job.spec.job_id]
        self._received.pop(job.spec.job_id, None)
        self._latest.pop(job.spec.job_id, None)
        self._row_updates.pop(job.spec.job_id, None)
        self._history.pop(job.spec.job_id, None)
        self._start(self._make_job(job.config, job.spec.job_id, job.spec.attempt + 1))
        return True

    def _on_messages(self, messages: list) -> None:
        for kind, job_id, attempt, payload in messages:
            if kind == WAKE:
                continue
            job = self.jobs.get(job_id)
            if job is None or attempt != job.spec.attempt:
                continue
            self._received[job_id] = self._received.get(job_id, 0) + 1
            if kind == START:  # the trial runs (a pool job is RUNNING already: its start and node)
                job.run_started = payload["started"]
                job.mark_running()
                self.store.update_job(self.task, job_id, status=RUNNING,
                                      started=payload["started"], node=payload["node"])
            elif kind == SCALARS:
                self._ingest(job, payload, attempt)

    def _ingest(self, job: Job, records: list[dict], attempt: int) -> None:
        """Store a job's reported scalars, update its reward and let the assessor judge it."""
        t0 = time.perf_counter()
        job_id = job.spec.job_id
        best = None
        history = self._history.setdefault(job_id, []) if self.assessor is not None else None
        # Rows are built once, in their store form (classified here, where the reward needs it).
        task, reward_attribute, append = self.task, self.reward_attribute, self._unsaved.append
        last: dict = {}
        rewards: list[float] = []
        for rec in records:
            get = rec.get
            tag, raw = get("t"), get("v")
            # A finite float, the common case, without a call: inf - inf and nan - nan are nan.
            if type(raw) is float and raw - raw == 0.0:
                value, text, flag = raw, None, FLAG_OK
            else:
                value, text, flag = classify(raw)
            append((task, job_id, tag, get("s"), value, text, flag, get("c"), attempt))
            last[tag] = raw
            if tag == reward_attribute and flag == FLAG_OK:
                rewards.append(value)  # type: ignore[arg-type]
                if history is not None:
                    history.append({"iteration": get("s"), "value": value, "created": get("c")})
        if rewards:
            best = max(rewards) if self.optimize_mode == "maximize" else min(rewards)
        latest = self._latest.setdefault(job_id, {})
        for tag, raw in last.items():
            latest[tag] = _json_safe(raw)
        fields = self._row_updates.setdefault(job_id, {})
        fields["latest"] = json.dumps(latest)
        if best is not None and self._record_reward(job, best):  # one row update per batch
            fields["reward"] = job.reward
        if job.outcome is None:  # else _finish writes them with the job's end
            self.store.update_job(self.task, job_id, **self._row_updates.pop(job_id))
        self.ingested += len(records)
        self.ingest_s += time.perf_counter() - t0
        if len(self._unsaved) >= SAVE_EVERY:
            self._save_scalars()
        if best is not None and history is not None:
            self._assess(job)

    def _record_reward(self, job: Job, value: float) -> bool:
        """Keep ``value`` if it beats the job's reward so far; True if it did."""
        if not self.better(value, job.reward):
            return False
        job.reward = value
        if self.better(value, self.best_reward):
            self.best_reward, self.best_job = value, job.name
        return True

    def _save_scalars(self) -> None:
        if self._unsaved:
            t0 = time.perf_counter()
            rows, self._unsaved = self._unsaved, []
            self.store.insert_scalar_rows(rows)
            self.ingest_s += time.perf_counter() - t0

    def _assess(self, job: Job) -> None:
        # A job's last values may arrive with its outcome: the assessor still sees them (its
        # statistics of finished jobs need them), but an ended job is not killed.
        if self.assessor is None or job.kill_status is not None:
            return
        try:
            verdict = self.assessor.assess_job(job.name, list(self._history[job.spec.job_id]))
        except Exception:  # noqa: BLE001 - a failing assessor counts as Good, never ends the task
            log.exception("assessor failed on %s; treating it as Good", job.name)
            return
        if (verdict == AssessResult.Bad or verdict is False) and job.outcome is None:
            job.kill(EARLY_STOPPED, "stopped early by the assessor")

    def _finish(self, job: Job) -> None:
        job_id = job.spec.job_id
        outcome = job.outcome or {}
        status = outcome.get("status", ERROR)
        reward = job.reward
        self.store.update_job(self.task, job_id, **self._row_updates.pop(job_id, {}),
                              status=status, ended=outcome.get("ended", time.time()),
                              exit_code=outcome.get("exit_code"), message=outcome.get("message") or None,
                              **({"node": outcome["node"]} if outcome.get("node") else {}),
                              **({"started": outcome["started"]} if outcome.get("started") else {}))
        if self.cfg.tensorboard:  # the job's scalars + args as TensorBoard events
            self._save_scalars()
            tensorboard.on_job_end(self.store, self.task, self.task_dir, job, status)
        log.info("%s %s%s reward=%s", job.name, status,
                 f" ({outcome['message']})" if outcome.get("message") else "", job.reward)
        del self.running[job_id]
        del self.jobs[job_id]  # finished jobs live in the store, not in the scheduler's memory
        self._received.pop(job_id, None)
        self._history.pop(job_id, None)
        self._latest.pop(job_id, None)
        if reward is not None and status != ERROR:
            self.searcher.update(job.config, reward)
        else:
            self.searcher.job_failed(job.config, status)
        if self.assessor is not None:
            try:
                self.assessor.job_end(job.name, status == FINISHED)
            except TypeError:
                self.assessor.job_end(job.name)
            except Exception:  # noqa: BLE001
                log.exception("assessor job_end failed on %s", job.name)

    def _apply_stops(self) -> None:
        with self._lock:
            external, self._external = self._external, None
        if external is not None:
            self._external = external  # remembered: it decides the task's end status
            self.request_stop(external[1], kill_running=True, status=external[0])
            self._kill = external
        if self._kill is not None:
            status, message = self._kill
            for job in self.running.values():
                if job.outcome is None and job.kill_status is None:
                    job.kill(status, message)

    def _abort_running(self, status: str, message: str) -> None:
        for job in self.running.values():
            try:
                job.kill(status, message)
            except Exception:  # noqa: BLE001
                pass
        self.store.mark_active_jobs(self.task, status, message)


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

    def stop(self, status: str, reason: str) -> None:
        self.core.external_stop(status, reason)


def _json_safe(value: Any) -> Any:
    """A reported value for the ``latest`` JSON column (NaN and inf as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


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
            progress_every: float = 0.5) -> dict[str, Any]:
        """Run the task to its end and return a summary (status, counts, best reward, reason).

        Ctrl+C stops it: running and pending jobs become ERROR, then KeyboardInterrupt is raised.
        """
        from ..runtime import check_resources, init_ray

        store = self.store or self.prepare()
        started_ray = init_ray(self.address, self.num_cpus, self.num_gpus)
        actor = None
        try:
            try:
                check_resources(self.cfg.resources)
            except UserError as exc:
                store.update_task(self.task, status=ERROR, ended=time.time(), message=str(exc))
                raise
            node_id = ray.get_runtime_context().get_node_id()
            strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)
            actor = SchedulerActor.options(scheduling_strategy=strategy).remote(
                self.cfg, self.task, self.work_dir, self.task_dir, self.code_dir, self.resume)
            ref = actor.run.remote()
            interrupted: float | bool = False
            # The first Ctrl+C only sets a flag (a KeyboardInterrupt inside a Ray call can leave the
            # client stuck); the loop then asks the scheduler to stop. A second one aborts.
            hits: list[float] = []

            def on_sigint(signum: int, frame: Any) -> None:
                hits.append(time.time())
                if len(hits) > 1:
                    raise KeyboardInterrupt

            in_main = threading.current_thread() is threading.main_thread()
            old_handler = signal.signal(signal.SIGINT, on_sigint) if in_main else None
            try:
                while True:
                    ready, _ = ray.wait([ref], timeout=progress_every)
                    if hits and not interrupted:
                        interrupted = hits[0]
                        actor.stop.remote(ERROR, "interrupted (Ctrl+C)")
                    if on_progress is not None:
                        on_progress()
                    if ready:
                        break
            finally:
                if old_handler is not None:
                    signal.signal(signal.SIGINT, old_handler)
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
                store.mark_cancelled_as(self.task, ERROR, interrupted - 5.0, "interrupted (Ctrl+C)")
                raise KeyboardInterrupt
            return summary
        except KeyboardInterrupt:
            store.mark_active_jobs(self.task, ERROR, "interrupted (Ctrl+C)")
            store.update_task(self.task, status=ERROR, ended=time.time(), message="interrupted (Ctrl+C)")
            raise
        finally:
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
