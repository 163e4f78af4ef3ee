"""What the loop does at jobs' checkpoints: restarts that go on from one, SIGTERM's preemption,
promotion by the assessor, PBT's exploits; and, on ``--resume``, the assessor's view of the
earlier jobs. A part of :class:`~gml_ray.engine.loop.SchedulerCore` (a base class of it): the
attributes below are the loop's, set in its ``__init__``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from gml_ray.config.task import TaskConfig
from gml_ray.engine.assessing import AssessorCalls
from gml_ray.engine.channel import WAKE
from gml_ray.engine.checkpoints import CheckpointKeeper, Restore
from gml_ray.engine.drain import Drain
from gml_ray.engine.factory import JobFactory
from gml_ray.engine.ingest import ScalarIngest
from gml_ray.engine.job import Job
from gml_ray.engine.pbt import Exploit, PopulationBasedTraining
from gml_ray.engine.resume import read_back
from gml_ray.engine.spec import job_name
from gml_ray.objectives import Outcome, ParetoArchive
from gml_ray.optimize import best as best_of
from gml_ray.optimize import is_better
from gml_ray.plugins.assessor import BaseAssessor
from gml_ray.plugins.searcher import BaseSearcher
from gml_ray.space import Dict
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus

log = logging.getLogger("gml_ray.scheduler")

# The message of a job the assessor paused at a rung (it waits for a promotion), as the store keeps
# it: a --resume tells those from jobs paused by a SIGTERM (they go on at once) by it.
AT_RUNG = "waits at a rung for promotion"


class Continuations:
    """The loop's handling of checkpoints, pauses and continuations (see the module docstring)."""

    # the loop's state these methods use (SchedulerCore sets each one)
    cfg: TaskConfig
    task: str
    drain: Drain
    elapsed_before: float
    best_reward: float | None
    best_job: str | None
    _retries: dict[int, int]
    _done_keys: set[str]
    store: Store
    keeper: CheckpointKeeper
    factory: JobFactory
    ingest: ScalarIngest
    searcher: BaseSearcher
    searcher_s: float
    assessor: Any
    reward_attribute: str
    judged_attribute: str
    archive: ParetoArchive
    optimize_mode: str
    running: dict[int, Job]
    parallel_size: int
    num_launched: int
    is_stop: bool
    pbt: PopulationBasedTraining | None
    promoter: BaseAssessor | None
    preempting: tuple[str, float] | None
    channel: Any
    _preempt: tuple[str, float] | None
    _paused: dict[str, tuple[dict, int, int]]
    _children: list[tuple[dict, int, Restore, int]]
    _told: set[int]
    _reruns: list[tuple[dict, int, int]]
    _next_id: int
    _kill: tuple[str, str] | None
    _external: tuple[JobStatus, str] | None
    _warned_no_checkpoint: bool
    _lock: threading.Lock

    assessing: AssessorCalls
    space: Dict

    # the loop's own methods these call
    def _start(self, job: Job, parent: int | None = None) -> None: ...
    def notify(self, text: str) -> None: ...
    def request_stop(self, reason: str, kill_running: bool = False, status: str = JobStatus.KILLED) -> None: ...

    def better(self, a: float, b: float | None) -> bool:
        """Whether reward ``a`` beats ``b`` (None: no reward yet) under ``optimize_mode``."""
        return is_better(a, b, self.optimize_mode)

    def _init_continuations(self, cfg: TaskConfig) -> None:
        """Called by the loop's ``__init__`` once its store, space and assessor exist."""
        self._preempt = None  # asked from another thread: (reason, grace s)
        self.preempting = None  # (reason, deadline) once the loop took it
        self.keeper = CheckpointKeeper(self.store, self.task, cfg.checkpoint.keep, warn=self.notify)
        self.pbt = PopulationBasedTraining(cfg.pbt, self.space, cfg.optimize_mode) if cfg.pbt else None
        # PBT's new jobs waiting for a slot: (config, job id, its copy of the donor's checkpoint, donor id)
        self._children = []
        self._warned_no_checkpoint = False
        # An assessor that pauses jobs at rungs and promotes the best (AshaAssessor(promotion=True)).
        self.promoter = self.assessor if isinstance(self.assessor, BaseAssessor) and self.assessor.promotes else None
        self._paused = {}  # job name -> (config, id, attempt): to promote
        self._told = set()  # jobs the searcher heard of at a pause (told once per job)

    def _settle(self, job: Job, status: str, reward: float | None, outcome: Outcome | None = None) -> None:
        """A job's attempt ended with ``status``: its checkpoints, PBT's population, the searcher
        and the assessor hear of it; a PAUSED job is not done (it goes on from its checkpoint)."""
        job_id = job.spec.job_id
        if self.promoter is not None and status == JobStatus.FINISHED and not self._warned_no_checkpoint \
                and job.restore is None and self.keeper.newest_step(job_id) is None:
            self._warned_no_checkpoint = True  # promotion pauses jobs only at their checkpoints
            self.notify(f"the assessor's promotion needs checkpoints: {job.name} ran to its end without "
                        f"announcing one (gml_ray.checkpoint), so it could not be paused at a rung")
        self.keeper.ended(job_id)
        if self.pbt is not None:
            self.pbt.left(job_id, finished=status == JobStatus.FINISHED)
        if status == JobStatus.PAUSED:
            if self.promoter is not None and self.preempting is None:
                self._paused[job.name] = (job.config, job_id, job.spec.attempt)
                if reward is not None and job_id not in self._told:  # a model learns from rung results
                    self._told.add(job_id)
                    self._tell(job.config, reward, status, outcome)
            return
        if job_id not in self._told:
            self._tell(job.config, reward, status, outcome)
        self._told.discard(job_id)
        self.assessing.ended(job, status == JobStatus.FINISHED)

    def _announced(self, job: Job, attempt: int, record: dict) -> None:
        """A running job announced a checkpoint: record it, then pause the job (preemption, a
        rung) or let PBT decide on it."""
        job_id = job.spec.job_id
        recorded = self.keeper.announced(job_id, attempt, job.spec.job_dir, record)
        if recorded is None or job.kill_status is not None or job.outcome is not None:
            return
        if self.preempting is not None:
            self._pause(job, f"{self.preempting[0]}: paused at its checkpoint of step {recorded.step}")
        elif self.pbt is not None and not self.is_stop:
            exploit = self.pbt.checkpointed(job_id, recorded.step)
            if exploit is not None:
                self._exploit(job, exploit)
        elif self.promoter is not None:
            self._at_rung(job, recorded.step)

    def _promote(self) -> None:
        """Free slots go first to paused jobs the assessor promotes (after max_tries too)."""
        while self.promoter is not None and self._paused and len(self.running) < self.parallel_size \
                and self._kill is None and self._external is None and self.preempting is None:
            name = self.promoter.promotion(list(self._paused))
            if name is None or name not in self._paused:
                break
            paused, job_id, attempt = self._paused.pop(name)
            self._start(self._again(paused, job_id, attempt + 1))

    def _continue_lines(self) -> None:
        """Then to PBT's new jobs, each continuing a member's line."""
        while self._children and not self.is_stop and len(self.running) < self.parallel_size:
            explored, job_id, restore, donor = self._children.pop(0)
            self._start(self.factory.make(explored, job_id, 1, restore), parent=donor)
            self.num_launched += 1

    def _restore_assessor(self, assessor: BaseAssessor, paused: set[int]) -> None:
        """The assessor hears of every earlier job (rung records); with promotion, the PAUSED ones
        wait to be promoted again instead of running on, and the searcher hears of their reward."""
        jobs = self.store.jobs(self.task, columns=("status", "attempt", "reward", "config", "message"))
        curves: dict[int, list[dict]] = {}
        attempt = {j["job_id"]: j["attempt"] or 1 for j in jobs}
        for s in self.store.scalars(self.task, None, [self.judged_attribute]):
            if (s["attempt"] or 1) == attempt[s["job_id"]] and s["flag"] == 0 and s["value"] is not None:
                curves.setdefault(s["job_id"], []).append({"iteration": s["step"], "value": s["value"],
                                                           "created": s["created"]})
        promoting = self.promoter is not None
        for job in jobs:
            waiting = promoting and job["job_id"] in paused and AT_RUNG in (job["message"] or "")
            try:
                assessor.resumed(job["name"], curves.get(job["job_id"], []), waiting)
            except Exception:  # noqa: BLE001 - a failing assessor never ends the task
                log.exception("assessor resumed failed on %s", job["name"])
            if waiting:
                self._paused[job["name"]] = (job["config"], job["job_id"], attempt[job["job_id"]])
                if job["reward"] is not None:
                    self.searcher.update(job["config"], job["reward"])
                    self._told.add(job["job_id"])
        if promoting:
            self._reruns = [r for r in self._reruns if job_name(r[1]) not in self._paused]

    # ---- API for criteria and the driver ---------------------------------------------------------

    def preempt(self, reason: str, grace: float) -> None:
        """Called from another thread (the driver's SIGTERM): stop launching, pause each running
        job at its next checkpoint (within ``grace`` seconds, else at its last one), then end.
        A job that never announced a checkpoint is stopped at once (ERROR), as without this."""
        with self._lock:
            self._preempt = (reason, grace)
        self.channel.put.remote((WAKE, 0, 0, None))

    def _carry(self, job: Job, parent: int | None = None) -> None:
        """A job started from a checkpoint goes on from its step: the scalars up to it (its earlier
        attempt's, moved; or, for a PBT job, its parent's, copied) become this attempt's, and its
        reward (and assessor history) start from them."""
        restore, spec = job.restore, job.spec
        if restore is None:
            return
        self.ingest.save()  # the earlier attempt's last rows are in the store before they move
        if parent is None:
            moved = self.store.carry_scalars(self.task, spec.job_id, spec.attempt - 1, spec.attempt, restore.step)
        else:
            moved = self.store.copy_scalars(self.task, parent, spec.job_id, restore.step)
        rows = [r for r in self.store.scalars(self.task, [spec.job_id], [self.reward_attribute, self.judged_attribute])
                if r["attempt"] == spec.attempt and r["flag"] == 0 and r["value"] is not None]
        rewards = [r["value"] for r in rows if r["tag"] == self.reward_attribute]
        job.reward = best_of(rewards, self.optimize_mode) if rewards else None
        if self.ingest.keep_history:
            self.ingest.history[spec.job_id] = [{"iteration": r["step"], "value": r["value"],
                                                 "created": r["created"]}
                                                for r in rows if r["tag"] == self.judged_attribute]
        log.info("%s restarts from its checkpoint at step %d (%s; %d scalars carried over)", job.name,
                 restore.step, restore.path, moved)

    def _again(self, config: dict, job_id: int, attempt: int) -> Job:
        """A job's next attempt, from its newest checkpoint when it announced one."""
        restore = self.keeper.restore_point(job_id, self.factory.job_dir(job_id))
        return self.factory.make(config, job_id, attempt, restore)

    def _exploit(self, job: Job, exploit: Exploit) -> None:
        """PBT: ``job`` stops (EARLY_STOPPED); a new job continues the donor from its own copy of
        the donor's checkpoint, with the explored args (started when a slot is free)."""
        donor = self.keeper.restore_point(exploit.donor, self.factory.job_dir(exploit.donor))
        if donor is None:
            return
        child_id = self._next_id
        copy = self.keeper.adopt(child_id, self.factory.job_dir(child_id), donor)
        if copy is None:
            return
        self._next_id += 1
        self._children.append((exploit.config, child_id, copy, exploit.donor))
        changes = ", ".join(f"{k} {_short(old)}→{_short(new)}" for k, (old, new) in exploit.changed.items())
        changes = changes or "no arg changed"
        message = (f"exploited: continues as {job_name(child_id)}, from {job_name(exploit.donor)}'s "
                   f"checkpoint of step {donor.step} ({changes})")
        if self.pbt is not None:
            self.pbt.left(job.spec.job_id)
        job.kill(JobStatus.EARLY_STOPPED, message)
        log.info("%s: %s", job.name, message)

    def _at_rung(self, job: Job, step: int) -> None:
        """Promotion: the assessor may pause a job at the checkpoint it just announced."""
        if self.promoter is None:
            return
        try:
            pause = self.promoter.at_checkpoint(job.name, list(self.ingest.history.get(job.spec.job_id, [])))
        except Exception:  # noqa: BLE001 - a failing assessor never ends the task
            log.exception("assessor at_checkpoint failed on %s; it goes on", job.name)
            return
        if pause:
            self._pause(job, f"paused at its checkpoint of step {step}: {AT_RUNG}")

    def _needs_checkpoints(self, job: Job, records: list[dict]) -> None:
        """PBT exploits only from checkpoints: say so once when a job passes the interval without one."""
        if self._warned_no_checkpoint or self.pbt is None:
            return
        top = max((s for r in records if isinstance(s := r.get("s"), int)), default=None)
        if top is not None and top >= self.pbt.cfg.perturbation_interval and job.restore is None \
                and self.keeper.newest_step(job.spec.job_id) is None:
            self._warned_no_checkpoint = True
            self.notify(f"scheduler.pbt needs checkpoints: {job.name} reported step {top} but announced "
                        f"none (gml_ray.checkpoint); no job can exploit it or continue from it")

    def _pause(self, job: Job, message: str) -> None:
        job.kill(JobStatus.PAUSED, message)
        log.info("%s: %s", job.name, message)

    def _apply_preemption(self) -> None:
        with self._lock:
            asked, self._preempt = self._preempt, None
        now = time.time()
        if asked is not None and self.preempting is None:
            reason, grace = asked
            self.preempting = (reason, now + grace)
            self.request_stop(reason)
            for job in self.running.values():  # one that never checkpointed: as without preemption
                if job.outcome is None and job.kill_status is None and self.keeper.newest_step(job.spec.job_id) is None:
                    job.kill(JobStatus.ERROR, reason)
        if self.preempting is not None and now >= self.preempting[1]:
            for job in self.running.values():
                if job.outcome is None and job.kill_status is None:
                    step = self.keeper.newest_step(job.spec.job_id)
                    if step is None:
                        job.kill(JobStatus.ERROR, self.preempting[0])
                    else:
                        self._pause(job, f"{self.preempting[0]}: no checkpoint within the grace period, "
                                         f"paused at its checkpoint of step {step}")

    def _tell(self, config: dict, reward: float | None, status: str, outcome: Outcome | None = None) -> None:
        """The searcher hears of a job's result (a reward, or a failure)."""
        t0 = time.perf_counter()
        self.searcher.tell(config, reward, status, outcome)
        self.searcher_s += time.perf_counter() - t0

    def _retire_paused(self) -> None:
        """The task ends: jobs still waiting for a promotion were not promoted (EARLY_STOPPED)."""
        for name, (_config, job_id, _attempt) in self._paused.items():
            self.store.update_job(self.task, job_id, status=JobStatus.EARLY_STOPPED,
                                  message="not promoted: stopped at its rung")
            log.info("%s not promoted: EARLY_STOPPED", name)
        self._paused.clear()

    def _restore(self) -> None:
        """``run --resume``: start from what the earlier attempts left (:mod:`.resume`)."""
        earlier = read_back(self.store, self.task, self.searcher, self.better)
        self.elapsed_before, self._next_id = earlier.elapsed_before, earlier.next_id
        self.num_launched, self._reruns, self._done_keys = earlier.launched, earlier.reruns, earlier.done_keys
        if self.pbt is not None:  # the population was formed: its jobs go on, no new configs
            self.pbt.proposed = earlier.launched
        if earlier.best is not None:
            self.best_reward, self.best_job = earlier.best
        for name, outcome in earlier.outcomes.items():
            self.archive.put(name, outcome)
        if isinstance(self.assessor, BaseAssessor):
            self._restore_assessor(self.assessor, earlier.paused)

    def _retry(self, job: Job) -> bool:
        """Run a job whose node or worker died again (``task.max_retries``); False if none left."""
        retries = self._retries.get(job.spec.job_id, 0)
        if retries >= self.cfg.max_retries or self.is_stop:
            return False
        self._retries[job.spec.job_id] = retries + 1
        log.warning("%s lost its node or worker (%s); running it again (%d/%d)", job.name,
                    job.outcome.get("message") if job.outcome else "", retries + 1, self.cfg.max_retries)
        del self.running[job.spec.job_id]
        self.drain.forget(job.spec.job_id)
        self.ingest.forget(job.spec.job_id)
        self._start(self._again(job.config, job.spec.job_id, job.spec.attempt + 1))
        return True


def _short(value: Any) -> str:
    """An arg value for a message line: floats to 6 significant digits."""
    return f"{value:.6g}" if isinstance(value, float) else repr(value)
