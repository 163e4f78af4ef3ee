"""What the loop does with what jobs report: a batch of scalars → the store, the job's reward and
outcome (several objectives, constraints), the task's best job and Pareto front, the assessor's
judgement; and, when a job ends, what its result changes."""
from __future__ import annotations

from typing import Any, Callable

from gml_ray.engine.assessing import AssessorCalls
from gml_ray.engine.ingest import ScalarIngest
from gml_ray.engine.job import Job
from gml_ray.engine.pbt import PopulationBasedTraining
from gml_ray.objectives import Outcome, OutcomeSpec, ParetoArchive
from gml_ray.optimize import best_result
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus


class Results:
    """The loop's handling of results (see the module docstring)."""

    # the loop's state these methods use (SchedulerCore sets each one)
    task: str
    store: Store
    ingest: ScalarIngest
    spec: OutcomeSpec
    archive: ParetoArchive
    optimize_mode: str
    best_reward: float | None
    best_job: str | None
    pbt: PopulationBasedTraining | None
    assessor: Any
    assessing: AssessorCalls
    _unreported: set[str]

    # the loop's methods these call, declared without a body here: a stub method would shadow the
    # real one of a later base class (Continuations)
    better: Callable[[float, float | None], bool]
    notify: Callable[[str], None]
    _announced: Callable[[Job, int, dict], None]
    _needs_checkpoints: Callable[[Job, list[dict]], None]

    def _ingest(self, job: Job, records: list[dict], attempt: int) -> None:
        """Store a job's reported scalars, update its reward and let the assessor judge it."""
        job_id = job.spec.job_id
        best = self.ingest.take(job_id, records, attempt)
        if self.pbt is not None and self.ingest.last_rewards:
            self.pbt.reported(job_id, self.ingest.last_rewards)
        for record in self.ingest.pop_announcements():
            self._announced(job, attempt, record)
        if self.pbt is not None:  # after this batch's announcements: they count
            self._needs_checkpoints(job, records)
        outcome = self.ingest.outcomes.get(job_id)
        if outcome is not None:
            self.archive.put(job.name, outcome)
        value = self.ingest.last_primary if self.spec.multi else best
        if value is not None and self._record_reward(job, value, outcome):  # one row update per batch
            self.ingest.row_updates[job_id]["reward"] = job.reward
        if job.outcome is None:  # else _finish writes them with the job's end
            self.store.update_job(self.task, job_id, **self.ingest.pop_updates(job_id))
        if self.ingest.judged_new and self.assessor is not None:
            self.assessing.judge(job, self.ingest.history[job_id])

    def _record_reward(self, job: Job, value: float, outcome: Outcome | None) -> bool:
        """Keep ``value`` as the job's reward if it beats its reward so far (with several
        objectives: if it is new, the last value counts); True if it was kept. It becomes the
        task's best when it beats that and the job is feasible."""
        if self.spec.multi:
            if value == job.reward:
                return False
        elif not self.better(value, job.reward):
            return False
        job.reward = value
        if (outcome is None or outcome.feasible) and self.better(value, self.best_reward):
            self.best_reward, self.best_job = value, job.name
        return True

    def _ended_result(self, job: Job, status: str, result: Outcome | None) -> None:
        """A job ended with ``status`` (its row written): an ERROR job's result leaves the front,
        a FINISHED one missing a scalar the outcome reads is warned about, and the task's best is
        found again if it was this job and its result no longer counts."""
        if status == JobStatus.ERROR:  # an ERROR job's reward is no result
            self.archive.put(job.name, None)
        elif status == JobStatus.FINISHED and not self.spec.plain:
            self._check_reported(job.name, self.ingest.reported(job.spec.job_id))
        if job.name == self.best_job and (status == JobStatus.ERROR or (result is not None and not result.feasible)):
            top = best_result(self.store.jobs(self.task, columns=("status", "reward", "feasible")),
                              self.optimize_mode)
            self.best_reward, self.best_job = (top["reward"], top["name"]) if top else (None, None)

    def _check_reported(self, name: str, reported: set[str]) -> None:
        """Warn once per scalar when a job finished without an objective or constrained scalar."""
        for tag in sorted(self.spec.tags - reported - self._unreported):
            self._unreported.add(tag)
            uses = [c.text for c in self.spec.constraints if c.tag == tag]
            what = f"constraint {uses[0]!r} (the job counts as infeasible)" if uses else \
                f"objective {tag!r} (the job is on no front; the searcher hears it failed)"
            self.notify(f"{name} finished without reporting {tag}, which {what} reads; "
                        f"check the scalar's name (warned once per scalar)")
