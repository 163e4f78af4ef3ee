"""The search loop (inside the scheduler actor) and its state.

Loop: ask the searcher for a config → filter criterion → launch a Job while fewer than
``parallel_size`` run → wait, with one ``ray.wait``, for a job to end or for messages from jobs
(start, scalars) → ingest them (store, reward, assessor) → stop criteria → tell the searcher each
ended job's reward. One store transaction per round.
"""
from __future__ import annotations

import logging
import resource
import sys
import threading
import time
import uuid
from typing import Any

import ray
import ray.util.scheduling_strategies

import gml_ray.views.tensorboard as tensorboard
from gml_ray.config.task import TaskConfig
from gml_ray.engine.assessing import AssessorCalls
from gml_ray.engine.channel import SCALARS, START, WAKE, ChannelName, MessageChannel
from gml_ray.engine.components import build_components
from gml_ray.engine.continuation import Continuations
from gml_ray.engine.drain import Drain
from gml_ray.engine.factory import JobContext, JobFactory
from gml_ray.engine.ingest import ScalarIngest
from gml_ray.engine.job import DEFAULT_RESOURCES, Job
from gml_ray.engine.messages import EXIT, exit_outcome
from gml_ray.engine.pool import ActorPool
from gml_ray.engine.results import Results
from gml_ray.engine.runtime import NodeWatch, NoNodeLeft
from gml_ray.engine.spec import KILL_GRACE_S
from gml_ray.engine.tracking import MlflowTracker
from gml_ray.engine.view import LoopView
from gml_ray.engine.warm_start import warm_start
from gml_ray.objectives import ParetoArchive
from gml_ray.space import config_key
from gml_ray.store.guard import StoreGuard
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus

log = logging.getLogger("gml_ray.scheduler")

WAKE_S = 0.5  # the loop wakes at least this often: ctl stop requests, heartbeat, time limits
COMMIT_EVERY_S = 0.05  # rounds that find work ready at once share a commit for at most this long
SLOW_SEARCHER_S = 0.01  # a searcher's answer took longer: it is asked outside the store's lock


class SchedulerCore(Results, Continuations):
    """The search loop and its state. Stop criteria see it through :class:`LoopView`; what it
    does at jobs' checkpoints is :class:`~gml_ray.engine.continuation.Continuations`."""

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
        self.view = LoopView(self)  # the `scheduler` the stop criterion's hooks get
        self.filter_criterion = comps.filter_criterion
        self.assessor = comps.assessor
        self.assessing = AssessorCalls(comps.assessor)
        self.space = cfg.search_space()
        self.reward_attribute, self.optimize_mode = cfg.reward_attribute, cfg.optimize_mode
        self.parallel_size = cfg.parallel_size
        # The queue lives beside the scheduler (the driver's node): jobs' nodes may come and go.
        here = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)
        name = f"gml-channel-{task}-{uuid.uuid4().hex[:12]}"
        self.channel = MessageChannel.options(  # type: ignore[attr-defined]  # a Ray actor class
            num_cpus=0, scheduling_strategy=here, name=name).remote()
        self.channel_name = ChannelName(name, ray.get_runtime_context().namespace)
        self.factory = JobFactory(JobContext(cfg, task, task_dir, code_dir, self.channel_name, self.space))
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
        self._external: tuple[JobStatus, str] | None = None
        self._lock = threading.Lock()
        self._next_id = 1
        self.drain = Drain()  # ended jobs waiting for their last messages
        self.spec = cfg.outcome_spec
        self.archive = ParetoArchive(self.spec)  # feasible outcomes and their front (not plain tasks)
        self.judged_attribute = cfg.judged.name  # what the assessor judges
        self._unreported: set[str] = set()  # objective/constraint scalars warned about
        self.ingest = ScalarIngest(self.store, task, cfg.reward_attribute, cfg.optimize_mode,
                                   keep_history=self.assessor is not None, spec=self.spec,
                                   judged=self.judged_attribute)
        self.guard = StoreGuard(self.store, work_dir, task)  # a full disk pauses the run
        self._notices: list[str] = []  # one-line warnings for the driver's console (notes())
        self._init_continuations(cfg)
        self.nodes = NodeWatch(cfg.resources or DEFAULT_RESOURCES,  # nodes that leave mid-run
                               unlocked=self.store.unlocked)
        self._slow_searcher = True  # until its first answer says otherwise
        self._last_wake = 0.0
        self.elapsed_before = 0.0  # run time of earlier attempts of this task (resume)
        self._retries: dict[int, int] = {}  # job id -> runs again after a lost node
        self._reruns: list[tuple[dict, int, int]] = []  # ERROR jobs of an earlier attempt: run first
        self._done_keys: set[str] = set()  # configs an earlier attempt already ran
        self.pool: ActorPool | None = None  # made by run(): its actors hold resources
        self.rounds = 0  # loop rounds, and the time they took outside ray.wait (benchmarks/)
        self.busy_s = 0.0
        self.searcher_s = 0.0  # in the searcher's get_config/update/job_failed during this run
        # tracking.mlflow: ended jobs go to MLflow from a thread of the tracker's, off this loop
        self.tracker = MlflowTracker(cfg.tracking.mlflow, work_dir, task, self.notify) \
            if cfg.tracking.mlflow is not None else None
        t0 = time.perf_counter()
        self.warm = warm_start(self.store, task, self.searcher, cfg)  # before its own results, as it began
        self.searcher_s += time.perf_counter() - t0
        if resume:
            self._restore()

    def request_stop(self, reason: str, kill_running: bool = False, status: str = JobStatus.KILLED) -> None:
        """Stop launching jobs; with ``kill_running`` also end running ones with ``status``."""
        if not self.is_stop:
            self.stop_reason = reason
            log.info("stopping: %s", reason)
        self.is_stop = True
        if kill_running and self._kill is None:
            self._kill = (status, reason)

    def external_stop(self, status: JobStatus, reason: str) -> None:
        """Called from another thread (the driver's Ctrl+C, ``ctl stop``)."""
        with self._lock:
            self._external = (status, reason)
        self.channel.put.remote((WAKE, 0, 0, None))

    # ---- the loop ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        status = JobStatus.FINISHED
        self.stop_criterion.before_run(self.view)
        pending_get = self.channel.get_all.remote()
        ready: list | None = None
        self.pool = self.factory.start_pool()
        self.guard.start()
        if self.tracker is not None:
            self.tracker.start()
        try:
            while True:
                why = self.guard.retry(idle=not self.running and not self.is_stop)
                if why:
                    self.request_stop(why)
                # Rounds whose jobs are ready at once share a commit (at most COMMIT_EVERY_S of
                # them); the store is committed before the loop blocks, so readers and other
                # writers never wait on an idle scheduler. A failing plugin does not undo what
                # was stored before it.
                with self.store.transaction(keep_on_error=True):
                    commit_at = time.perf_counter() + COMMIT_EVERY_S
                    while True:
                        round_start = time.perf_counter()
                        if ready is not None:
                            pending_get = self._handle(ready, pending_get)
                            self.stop_criterion.check(self.view)
                            self._apply_stops()
                        self._launch()
                        self.rounds += 1
                        self.busy_s += time.perf_counter() - round_start
                        ready = None
                        if self._done() or self.store.backlog.failing:
                            break
                        ready = self._ready(pending_get, block=False)
                        if not ready or time.perf_counter() >= commit_at:
                            break
                    # Scalars of ended jobs are written after their successors started: the
                    # workers do not wait for SQLite.
                    self.ingest.save()
                if self._done():
                    break
                if not ready:
                    ready = self._ready(pending_get)
            if self._external is not None:
                status = self._external[0]
            elif self.preempting is not None:
                status = JobStatus.ERROR
            else:
                self._retire_paused()
        except BaseException as exc:
            status = JobStatus.ERROR
            self.stop_reason = f"scheduler failed: {type(exc).__name__}: {exc}"
            log.exception("scheduler failed")
            self._abort_running(JobStatus.ERROR, self.stop_reason)
            raise
        finally:
            if self.pool is not None:  # no pool actor outlives its run
                self.pool.shutdown()
            try:
                self.stop_criterion.after_run(self.view)
            except Exception:  # noqa: BLE001 - a plugin's after_run must not hide the result
                log.exception("stop criterion after_run failed")
            try:
                self.ingest.save()
                self.store.update_task(self.task, status=status, ended=time.time(),
                                       message=self.stop_reason or None)
                self.guard.finish()
                if self.guard.spilled:  # what the store shows is not how the run ended
                    status = JobStatus.ERROR
            except Exception:  # noqa: BLE001
                log.exception("could not record the task's end")
                raise
            log.info("task ended: %s %s", status, self.stop_reason)
            if self.tracker is not None:  # a bounded wait for what MLflow still lacks; never raises
                self.tracker.close(status)
        if self.nodes.ended is not None and status == JobStatus.ERROR:  # no node could run the jobs
            raise NoNodeLeft(self.nodes.ended)
        return self.summary(status)

    def store_problem(self) -> str | None:
        """One line while store writes fail (read from another thread: the driver's)."""
        return self.guard.problem() or self.nodes.notice

    def notify(self, text: str) -> None:
        """A one-line warning for the run's console (and scheduler.log)."""
        log.warning("%s", text)
        with self._lock:
            self._notices.append(text)

    def notes(self) -> tuple[str | None, list[str]]:
        """What the driver shows (read from its thread): the store's trouble, if any, and the
        warnings since it last asked."""
        with self._lock:
            notices, self._notices = self._notices, []
        return self.store_problem(), notices

    def summary(self, status: str) -> dict[str, Any]:
        return {"task": self.task, "status": status, "reason": self.stop_reason, "spilled": self.guard.spilled,
                "launched": self.num_launched, "filtered": self.num_filtered,
                "counts": self.store.status_counts(self.task), "best_reward": self.best_reward,
                "best_job": self.best_job,
                "elapsed": self.elapsed_before + time.time() - self.start_time,
                "scheduler_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "scalars": self.ingest.ingested, "ingest_s": self.ingest.seconds,
                "rounds": self.rounds, "busy_s": self.busy_s, "searcher_s": self.searcher_s,
                **({"mlflow": self.tracker.stats()} if self.tracker is not None else {}),
                "notices": self.notes()[1],
                **self.nodes.stats(),  # looks at the cluster's nodes (ray.nodes()) and their time
                # the actor process's CPU (Ray's own threads in it included)
                "cpu_s": (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))}

    def _launch(self) -> None:
        if self.store.backlog.failing:
            return  # the store cannot take what new jobs would report
        if self.nodes.waiting:
            return  # no alive node can run a job (runtime.NodeWatch): none starts until one joins
        misses = 0
        while self._reruns and not self.is_stop and len(self.running) < self.parallel_size:
            rerun, job_id, attempt = self._reruns.pop(0)
            self._start(self._again(rerun, job_id, attempt))
        self._promote()
        self._continue_lines()
        while not self.is_stop and not self.exhausted and len(self.running) < self.parallel_size:
            if self.pbt is not None and not self.pbt.wants_config():
                self.exhausted = True  # the population is formed: exploits make the next jobs
                break
            self.stop_criterion.before_iter(self.view)
            if self.is_stop:
                break
            config = self._next_config()
            if config is None:
                self.exhausted = True
                break
            if self._done_keys and config_key(config) in self._done_keys:
                continue  # an earlier attempt ran it; the searcher already knows its result
            job = self.factory.make(config, self._next_id)
            if self.filter_criterion is not None and self.filter_criterion.filter(job):
                self.num_filtered += 1
                self.searcher.job_failed(config, "FILTERED")
                misses += 1
                if misses >= 100_000:
                    self.request_stop("the filter criterion dropped 100000 configs in a row")
                continue
            self._start(job)
            self.num_launched += 1
            if self.pbt is not None:
                self.pbt.proposed += 1
            self.stop_criterion.after_iter(self.view)

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
        spent = time.perf_counter() - t0
        self.searcher_s += spent
        self._slow_searcher = spent > SLOW_SEARCHER_S
        if spent > WAKE_S:  # it may have held the write lock: the commit that ends it beats
            self.store.heartbeat(self.task)
        return config

    def _start(self, job: Job, parent: int | None = None) -> None:
        """Start ``job`` and write its row; ``parent``: the job whose checkpoint it continues (PBT)."""
        spec = job.spec
        if job.rendered is not None:  # File args' copies are written when the job starts
            job.rendered.write_files()
        job.start()
        # A job on a pool actor runs at once: its row is written RUNNING in one statement.
        status, started = (JobStatus.RUNNING, time.time()) if job.starts_running and job.mark_running() \
            else (JobStatus.PENDING, None)
        self.keeper.starting(spec.job_id, spec.job_dir, job.restore)
        if spec.attempt > 1:
            job.follow(self.store.jobs(self.task, [spec.name], columns=("node", "attempt")))
            self._carry(job)
            self.store.update_job(self.task, spec.job_id, status=status, attempt=spec.attempt,
                                  reward=job.reward, started=started, ended=None, exit_code=None,
                                  message=None, command=spec.command or spec.function,
                                  node=job.node_text(None))
        else:
            self._next_id = max(self._next_id, spec.job_id + 1)
            self.store.add_job(self.task, spec.job_id, spec.name, job.config, job.arg_dict,
                               spec.command or spec.function, spec.job_dir, status=status,
                               started=started)
            if parent is not None and job.restore is not None:
                self._carry(job, parent)
                self.store.update_job(self.task, spec.job_id, parent_id=parent, parent_step=job.restore.step,
                                      reward=job.reward)
        if self.pbt is not None:
            self.pbt.joined(spec.job_id, job.config, job.restore.step if job.restore is not None else -1, parent)
        log.info("started %s (attempt %d): %s", spec.name, spec.attempt, spec.command or job.arg_dict)
        self.jobs[spec.job_id] = job
        self.running[spec.job_id] = job
        self.drain.started(spec.job_id)

    def _done(self) -> bool:
        return not self.running and (self.is_stop or (self.exhausted and not self._children))

    def _ready(self, pending_get: Any, block: bool = True) -> list:
        """Wait (at most ``WAKE_S``; not at all unless ``block``) until a job ends or messages
        come; returns what is ready."""
        timeout = WAKE_S if block else 0.0
        left = self.stop_criterion.seconds_left()
        if left is not None:
            timeout = min(timeout, left + 0.01)
        if self.drain.waiting:
            timeout = min(timeout, 0.1)
        if self.store.backlog.failing:
            timeout = min(timeout, max(0.01, self.guard.retry_at - time.time()))
        refs = [pending_get] + [j.ref for j in self.running.values() if j.outcome is None]
        # A poll takes everything ready; a wait returns at the first thing.
        ready, _ = ray.wait(refs, num_returns=1 if block else len(refs), timeout=max(0.0, timeout))
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
                if outcome.get("lost"):
                    self.nodes.job_lost(outcome)
                if outcome.get("lost") and job.exited is None and self._retry(job):
                    continue
                # Reports a job returned instead of sending: its last ones. They are taken in
                # once the messages it sent before them are in (_finish), never ahead of them.
                job.returned = outcome.pop("scalars", None) or []
                self.drain.ended(job_id)
        now = time.time()
        for job in self.running.values():
            why = job.overdue(now)
            if why:  # stuck in C code, or it caught its interrupt
                log.warning("%s did not stop within %gs (%s): ending its process", job.name,
                            KILL_GRACE_S, why)
                job.end_actor(why)
        for job_id in self.drain.done(self.running, now):
            self._finish(self.running[job_id])
        no_node = self.nodes.tick(now, self.running.values())
        if no_node:  # the jobs waited the grace period for a node that can run them
            self.external_stop(JobStatus.ERROR, no_node)
        if now - self._last_wake >= WAKE_S:
            # The driver's thread beats too (whatever this loop is doing); this one shares the
            # round's commit, so a commit after a long round never shows a stale heartbeat.
            self._last_wake = now
            self.store.heartbeat(self.task)
            for handler in logging.getLogger().handlers:
                handler.flush()
            if self.store.stop_requested(self.task):
                self.external_stop(JobStatus.KILLED, "stopped by `ctl stop`")
        return pending_get

    def _on_messages(self, messages: list) -> None:
        for kind, job_id, attempt, payload in messages:
            if kind == WAKE:
                continue
            job = self.jobs.get(job_id)
            if job is None or attempt != job.spec.attempt:
                log.warning("a %s message of job %s (attempt %s) came after it ended: dropped",
                            kind, job_id, attempt)
                continue
            self.drain.received(job_id)
            if kind == START:  # the trial runs (a pool job is RUNNING already: its start and node)
                job.run_started = payload["started"]
                job.mark_running()
                self.store.update_job(self.task, job_id, status=JobStatus.RUNNING,
                                      started=payload["started"], node=job.node_text(payload["node"]))
            elif kind == SCALARS:
                self._ingest(job, payload, attempt)
            elif kind == EXIT:  # a function trial's os._exit(code): its actor dies with no outcome
                job.exited = payload

    def _finish(self, job: Job) -> None:
        job_id = job.spec.job_id
        if job.returned:
            self._ingest(job, job.returned, job.spec.attempt)
            job.returned = []
        outcome = exit_outcome(job.outcome or {}, job.exited, job.kill_status is not None)
        status = outcome.get("status", JobStatus.ERROR)
        reward, result = job.reward, self.ingest.settle(job_id)
        self.store.update_job(self.task, job_id, **self.ingest.pop_updates(job_id),
                              status=status, ended=outcome.get("ended", time.time()),
                              exit_code=outcome.get("exit_code"), message=outcome.get("message") or None,
                              **({"node": outcome["node"]} if outcome.get("node") else {}),
                              **({"started": outcome["started"]} if outcome.get("started") else {}))
        self._ended_result(job, status, result)
        if self.cfg.tensorboard:  # the job's scalars + args as TensorBoard events
            self.ingest.save()
            tensorboard.on_job_end(self.store, self.task, self.task_dir, job, status)
        log.info("%s %s%s reward=%s", job.name, status,
                 f" ({outcome['message']})" if outcome.get("message") else "", job.reward)
        if self.tracker is not None:  # a queue put: the tracker's thread reads the job once committed
            self.tracker.job_ended(job_id, job.name)
        del self.running[job_id]
        del self.jobs[job_id]  # finished jobs live in the store, not in the scheduler's memory
        self.drain.forget(job_id)
        self.ingest.forget(job_id)
        self._settle(job, status, reward, result)

    def _apply_stops(self) -> None:
        self._apply_preemption()
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
