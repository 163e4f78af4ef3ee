"""AshaAssessor and HyperbandAssessor: asynchronous successive halving (Li et al., MLSys 2020) in
the manual's assessor contract.

Steps are counted as in MedianStopAssessor: a job's step is the number of finite values of the
reward attribute it has reported (its S-th value is step S), whatever ``iteration`` it gave them.

Rules of one bracket (``AshaAssessor`` is one bracket):

* The rungs are the steps ``min_step * reduction_factor**k`` (k = 0, 1, ...) below ``max_step``
  (all of them when ``max_step`` is None). ``max_step`` is the step a full job reaches: there is
  no rung at or past it, and a job past the last rung runs to its own end.
* When a job reaches a rung (its step becomes >= the rung), the job's value at the rung, its best
  value (per ``optimize_mode``) among its first ``rung`` values, the same measure as its reward,
  is recorded there. It is then ranked among every job recorded at that rung so far, itself
  included, whatever those jobs became later (running, FINISHED, EARLY_STOPPED, ERROR): its
  rank is 1 + the number of recorded values strictly better than its own. With ``n`` jobs
  recorded, it goes on while ``rank <= max(1, n // reduction_factor)``, the top
  1/reduction_factor (at least the best job); otherwise it is Bad (EARLY_STOPPED).
* Decisions are asynchronous and final: a job is judged once per rung, on arrival, against the
  jobs that were there before it; a job that passed is not recalled when better ones arrive.
  The first job to reach a rung always passes, so early jobs climb further than the late ones.
  A job whose values arrive in a batch that crosses several rungs is judged at each in order and
  stops at the first it fails.
* The assessor keeps the rung records for the life of the run (one float per job and rung); a
  ``--resume`` rebuilds them from the earlier jobs' curves (:meth:`AshaAssessor.resumed`).

With ``promotion: true`` (ASHA as Li et al. give it in Algorithm 2, with promotions), a job is
not stopped at a rung but paused there, at its first checkpoint at or past the rung: its value is
recorded and it holds no resources. Whenever a job slot is free, the best paused job that is in
the top ``max(1, n // reduction_factor)`` of its rung and was not promoted from it yet continues
from its checkpoint (the highest rung first); only when none is does the searcher give a new
config. A job past the last rung runs to its end. When the task ends, a job still paused was not
promoted: it becomes EARLY_STOPPED. Promotion needs jobs that announce checkpoints
(``gml_ray.checkpoint``); a job that announces none runs to its end.

``HyperbandAssessor`` runs several such brackets side by side (asynchronous Hyperband, as Ray
Tune's ``ASHAScheduler(brackets=...)`` and Optuna's ``HyperbandPruner``): bracket ``b`` has its
first rung at ``min_step * reduction_factor**b``, so bracket 0 is the most aggressive and the last
one judges its jobs only at bracket 0's last rung. Each job belongs to one bracket, chosen from its job id
(CRC-32, so the same id lands in the same bracket in every run), with shares proportional to
Hyperband's bracket sizes ``ceil((s_max + 1) / (s + 1) * reduction_factor**s)``; a job competes only
with the jobs of its bracket.

Differences from the peers:

* Ray Tune's ``ASHAScheduler``: stops a trial whose *last* result is below the
  ``(1 - 1/reduction_factor)`` percentile (linearly interpolated) of the results recorded at the
  rung, so with 4 trials at a rung the top 2 pass; here the job's best value so far is ranked and
  the top ``max(1, n // reduction_factor)`` pass (1 of 4). Tune also stops every trial at
  ``max_t``; here reaching ``max_step`` never stops a job (Bad would mark a complete job
  EARLY_STOPPED). Tune's ``grace_period`` is ``min_step``; its rungs count
  ``training_iteration``, as steps here count reports.
* Optuna's ``SuccessiveHalvingPruner``: the same promotion count (``n // reduction_factor``, at least
  the best), but it compares the intermediate value reported *at* the rung's step (a trial that
  skips the step is not judged there) and its rungs start at ``min_resource *
  reduction_factor**min_early_stopping_rate`` (``min_resource='auto'`` guesses it from the first
  finished trial); here a job is judged at the first value at or past the rung, on its best value
  so far, and ``min_step`` is given. Optuna has no ``max_resource`` for it either.
"""
from __future__ import annotations

import logging
import math
import zlib
from typing import Any, Collection, Sequence

from gml_ray.optimize import sign
from gml_ray.plugins.assessor import ASSESSORS, AssessResult, BaseAssessor, check_int, history_values
from gml_ray.vocab import OptimizeMode

log = logging.getLogger("gml_ray.assessor")


class _Bracket:
    """The rungs of one successive-halving bracket and the values recorded at each."""

    def __init__(self, first_rung: int, reduction_factor: int, max_step: int | None) -> None:
        self.first_rung = first_rung
        self.reduction_factor = reduction_factor
        self.max_step = max_step
        self.records: list[dict[str, float]] = []  # per rung: job id -> value at the rung

    def rung(self, k: int) -> int | None:
        """The step of rung ``k``, or None when there is no such rung (at or past ``max_step``)."""
        step = self.first_rung * self.reduction_factor ** k
        if self.max_step is not None and step >= self.max_step:
            return None
        return step

    def record(self, k: int, job_id: str, value: float) -> tuple[int, int, int]:
        """Record ``value`` (a score: higher is better) at rung ``k``; returns (rank, jobs at the
        rung, how many pass)."""
        while len(self.records) <= k:
            self.records.append({})
        at_rung = self.records[k]
        at_rung[job_id] = value
        better = sum(1 for v in at_rung.values() if v > value)
        n = len(at_rung)
        return better + 1, n, max(1, n // self.reduction_factor)


@ASSESSORS.register_module()
class AshaAssessor(BaseAssessor):
    """``AshaAssessor(min_step=1, reduction_factor=3, max_step=None)``; ``optimize_mode`` comes
    from the searcher. See the module docstring for the rules."""

    def __init__(self, min_step: int = 1, reduction_factor: int = 3, max_step: int | None = None,
                 optimize_mode: str = OptimizeMode.MAXIMIZE, promotion: bool = False) -> None:
        super().__init__(optimize_mode)
        if not isinstance(promotion, bool):
            raise ValueError(f"promotion must be true or false, got {promotion!r}")
        self.promotes = promotion
        self._paused: dict[str, tuple[int, int]] = {}  # job id -> (bracket, rung index) it waits at
        self._promoted: set[tuple[int, int, str]] = set()  # (bracket, rung index, job id)
        self.min_step = check_int("min_step", min_step, 1)
        self.reduction_factor = check_int("reduction_factor", reduction_factor, 2)
        self.max_step = None if max_step is None else check_int("max_step", max_step, 1)
        if self.max_step is not None and self.max_step <= self.min_step:
            raise ValueError(f"max_step must be above min_step ({self.min_step}), got {max_step}")
        self.brackets = self._make_brackets()
        self._bracket_of: dict[str, int] = {}
        self._next_rung: dict[str, int] = {}  # job id -> index of the next rung it must pass

    def _make_brackets(self) -> list[_Bracket]:
        return [_Bracket(self.min_step, self.reduction_factor, self.max_step)]

    def bracket_of(self, job_id: str) -> int:
        """The index of the bracket ``job_id`` belongs to (always 0 for ASHA)."""
        return 0

    def assess_job(self, job_id: str, history: Sequence[dict[str, Any]]) -> AssessResult:
        if self.promotes:  # jobs are paused at their rungs' checkpoints, never stopped
            return AssessResult.Good
        values = history_values(history)
        step = len(values)
        if job_id not in self._bracket_of:
            self._bracket_of[job_id] = self.bracket_of(job_id)
        b = self._bracket_of[job_id]
        bracket = self.brackets[b]
        k = self._next_rung.get(job_id, 0)
        s = sign(self.optimize_mode)
        while True:
            rung = bracket.rung(k)
            if rung is None or step < rung:
                break
            value = max(s * v for v in values[:rung])
            rank, n, passing = bracket.record(k, job_id, value)
            k += 1
            self._next_rung[job_id] = k
            if rank > passing:
                log.info("%s at step %d: value %.6g at rung %d%s ranks %d of %d; the top %d go on",
                         job_id, step, value, rung, f" (bracket {b})" if len(self.brackets) > 1 else "",
                         rank, n, passing)
                return AssessResult.Bad
        return AssessResult.Good

    def job_end(self, job_id: str, success: bool = True) -> None:
        """A job ended: its rung values stay (it reached those rungs), its cursor goes."""
        self._next_rung.pop(job_id, None)
        self._bracket_of.pop(job_id, None)
        self._paused.pop(job_id, None)

    def at_checkpoint(self, job_id: str, history: list[dict[str, Any]]) -> bool:
        """With ``promotion``: record the job at the next rung it has reached and pause it there."""
        if not self.promotes:
            return False
        values = history_values(history)
        if job_id not in self._bracket_of:
            self._bracket_of[job_id] = self.bracket_of(job_id)
        b = self._bracket_of[job_id]
        k = self._next_rung.get(job_id, 0)
        rung = self.brackets[b].rung(k)
        if rung is None or len(values) < rung:
            return False  # past the last rung (it runs to its end), or not at the next one yet
        s = sign(self.optimize_mode)
        rank, n, passing = self.brackets[b].record(k, job_id, max(s * v for v in values[:rung]))
        self._next_rung[job_id] = k + 1
        self._paused[job_id] = (b, k)
        log.info("%s paused at rung %d%s: ranks %d of %d (the top %d may go on)", job_id, rung,
                 f" (bracket {b})" if len(self.brackets) > 1 else "", rank, n, passing)
        return True

    def promotion(self, paused: Collection[str] | None = None) -> str | None:
        """The paused job to continue (one of ``paused``, the jobs paused now; all it paused when
        None): in the top ``max(1, n // reduction_factor)`` of its rung's records and not
        promoted from that rung yet, the highest rung first (then the better value, then the
        earlier job)."""
        best: tuple[int, float, str] | None = None
        for job_id, (b, k) in self._paused.items():
            if (b, k, job_id) in self._promoted or (paused is not None and job_id not in paused):
                continue
            records = self.brackets[b].records[k]
            value = records[job_id]
            rank = 1 + sum(1 for v in records.values() if v > value)
            if rank > max(1, len(records) // self.reduction_factor):
                continue
            key = (-k, -value, job_id)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        job_id = best[2]
        b, k = self._paused.pop(job_id)
        self._promoted.add((b, k, job_id))
        return job_id

    def resumed(self, job_id: str, history: list[dict[str, Any]], paused: bool) -> None:
        """``--resume``: record an earlier job at every rung its history reached, so later jobs
        are ranked against it as in the uninterrupted run; with ``promotion``, it was promoted from
        each rung it went past, and a ``paused`` one waits at the last rung it reached."""
        values = history_values(history)
        b = self._bracket_of.setdefault(job_id, self.bracket_of(job_id))
        bracket, s = self.brackets[b], sign(self.optimize_mode)
        k = 0
        while (rung := bracket.rung(k)) is not None and len(values) >= rung:
            bracket.record(k, job_id, max(s * v for v in values[:rung]))
            k += 1
        self._next_rung[job_id] = k
        if self.promotes and k > 0:
            self._promoted.update((b, i, job_id) for i in range(k - 1))
            if paused:
                self._paused[job_id] = (b, k - 1)
            else:
                self._promoted.add((b, k - 1, job_id))

    def paused_at(self, job_id: str) -> int | None:
        """The rung step a paused job waits at (None if it is not paused)."""
        where = self._paused.get(job_id)
        return None if where is None else self.brackets[where[0]].rung(where[1])

    def rung_counts(self) -> list[list[int]]:
        """Per bracket, how many jobs were recorded at each rung (for logs and tests)."""
        return [[len(r) for r in bracket.records] for bracket in self.brackets]


@ASSESSORS.register_module()
class HyperbandAssessor(AshaAssessor):
    """``HyperbandAssessor(min_step=1, max_step, reduction_factor=3, brackets=None)``: asynchronous
    Hyperband. ``brackets`` defaults to (and is at most) the number of brackets that have a rung
    below ``max_step``: one per rung of bracket 0. See the module docstring."""

    def __init__(self, min_step: int = 1, reduction_factor: int = 3, max_step: int | None = None,
                 brackets: int | None = None, optimize_mode: str = OptimizeMode.MAXIMIZE,
                 promotion: bool = False) -> None:
        if max_step is None:
            raise ValueError("max_step is required: the step a full job reaches")
        check_int("max_step", max_step, 1)
        check_int("min_step", min_step, 1)
        check_int("reduction_factor", reduction_factor, 2)
        fit = 0
        while min_step * reduction_factor ** (fit + 1) < max_step:
            fit += 1
        most = fit + 1  # the brackets whose first rung is below max_step
        if brackets is None:
            brackets = most
        self.n_brackets = check_int("brackets", brackets, 1)
        if self.n_brackets > most:
            raise ValueError(f"brackets must be at most {most} (the brackets with a rung below "
                             f"max_step {max_step}), got {brackets}")
        super().__init__(min_step, reduction_factor, max_step, optimize_mode, promotion)
        s_max = self.n_brackets - 1
        # Hyperband's bracket sizes, bracket 0 (s = s_max) the largest; their running sums.
        sizes = [math.ceil((s_max + 1) / (s + 1) * self.reduction_factor ** s)
                 for s in range(s_max, -1, -1)]
        self.bracket_sizes = sizes
        self._cumulative = [sum(sizes[:i + 1]) for i in range(len(sizes))]

    def _make_brackets(self) -> list[_Bracket]:
        return [_Bracket(self.min_step * self.reduction_factor ** b, self.reduction_factor, self.max_step)
                for b in range(self.n_brackets)]

    def bracket_of(self, job_id: str) -> int:
        slot = zlib.crc32(job_id.encode()) % self._cumulative[-1]
        for b, bound in enumerate(self._cumulative):
            if slot < bound:
                return b
        return len(self._cumulative) - 1  # unreachable: slot < the total
