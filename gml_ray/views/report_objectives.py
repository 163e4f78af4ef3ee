"""The report's part for several objectives and constraints (a task with an ``objectives`` column):
each job's objective values, feasibility and place on the Pareto front, and the front's
hypervolume as the jobs ended.

Which jobs make the front: as :func:`gml_ray.objectives.task_front` (``ctl show``, the docs) says,
jobs whose result counts (:func:`gml_ray.optimize.has_result`: not ERROR, no constraint broken; a
running job's so far included) with a finite value of every objective, none dominated by another.
The summary's front size and hypervolume are therefore ``ctl show``'s.

The hypervolume series uses one reference point for every prefix of the jobs (the configured
one, else :meth:`OutcomeSpec.reference` over all the front's candidates), so it never falls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from gml_ray.objectives import OutcomeSpec, hypervolume
from gml_ray.optimize import has_result

MAX_VOLUMES = 100  # hypervolumes computed for the series at most (one per change of the front) ...
SERIES_SECONDS = 5.0  # ... and about the most time they may take (as volume_seconds estimates it)
FINAL_SECONDS = 20.0  # a front whose volume would take longer gets none (it is left unknown)
Point = tuple[float, ...]  # a score vector: an outcome's objective values, larger is better


@dataclass
class ObjectiveData:
    """What the page adds for an objectives task. Numbers are raw floats (non-finite ones None):
    the caller rounds them for the page."""

    summary: dict[str, Any]  # objectives, constraints, front {size, hypervolume, reference, computed}
    jobs: list[dict[str, Any]]  # per job, in the jobs' order: values, violations, feasible, pareto
    series: list[tuple[float, float, int]]  # (end time, hypervolume so far, job index), end order


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def job_values(job: Mapping[str, Any], n: int) -> tuple[float | None, ...]:
    """A job row's ``n`` objective values (None for each it has no finite value of)."""
    raw = job.get("rewards") or ()
    return tuple(_finite(raw[i]) if i < len(raw) else None for i in range(n))


def candidates(jobs: Sequence[dict[str, Any]],
               values: Sequence[tuple[float | None, ...]]) -> dict[int, tuple[float, ...]]:
    """The jobs that may be on the front (a result that counts, a value of every objective):
    job index -> its values."""
    return {i: tuple(v for v in values[i] if v is not None) for i, j in enumerate(jobs)
            if has_result(j) and None not in values[i]}


def _changes(scores: Sequence[Point]) -> tuple[dict[int, tuple[Point, list[Point]]], set[Point]]:
    """Adding ``scores`` one at a time: where the front changes (index -> the point added and the
    points it dominates), and the final front (a point equal to one on it changes nothing). The
    front is an array: a point is checked against it in one vector operation, not f calls."""
    changes: dict[int, tuple[Point, list[Point]]] = {}
    front = np.empty((0, len(scores[0]) if scores else 0))
    for k, p in enumerate(scores):
        v = np.asarray(p, dtype=float)
        if (front >= v).all(axis=1).any():  # one at least as good everywhere: equal, or dominating
            continue
        gone = (front <= v).all(axis=1)  # dominated by p (none equals it)
        changes[k] = (p, [tuple(q) for q in front[gone].tolist()])
        front = np.vstack([front[~gone], v])
    return changes, {tuple(q) for q in front.tolist()}


def volume_seconds(f: int, d: int) -> float:
    """A generous estimate of :func:`~gml_ray.objectives.hypervolume`'s time for a front of ``f`` points in ``d`` objectives
    (measured on one core, 2025: 2: 10,000 points 0.05 s; 3: 5,000 0.08 s; 4: 1,000 5 s; 5: 200 12 s)."""
    return f * 1e-5 if d <= 2 else f ** (d - 1) * 2e-8


def pareto(spec: OutcomeSpec, jobs: Sequence[Mapping[str, Any]], points: Mapping[int, Sequence[float]],
           reference: Sequence[float], now: float) -> tuple[set[int], list[tuple[float, float, int]]]:
    """The jobs on the front of ``points`` (job index -> objective values), and the hypervolume
    series: (end time, hypervolume of the front of the jobs ended so far, job index) in end order
    (no end time: ``now``), all against ``reference``. The volume only changes where the front does.

    The volume is computed at no more of the front's changes than ``MAX_VOLUMES`` or
    ``SERIES_SECONDS`` allow (evenly spread, the last one always): a job whose volume was not
    computed gets no point, so every point given is exact, and the last is the whole front's. A
    front whose volume would take more than ``FINAL_SECONDS`` (many points, 4 or more
    objectives) gets no series at all."""
    if not points:  # a configured reference, no job on a front yet
        return set(), []
    ref = spec.scores(reference)
    order = sorted(points, key=lambda i: (jobs[i].get("ended") or now, i))
    scores = [spec.scores(points[i]) for i in order]
    changes, final = _changes(scores)
    on_front = {i for i, p in zip(order, scores) if p in final}
    cost = volume_seconds(len(final), len(ref))  # the most one volume of the series takes
    if cost > FINAL_SECONDS:
        return on_front, []
    at = sorted(changes)
    n = max(1, min(MAX_VOLUMES, int(SERIES_SECONDS / cost)))
    computed = set(at[::-1][::max(1, -(-len(at) // n))])  # from the last change back
    out: list[tuple[float, float, int]] = []
    front: set[Point] = set()
    exact, hv = True, 0.0
    for k, i in enumerate(order):
        if k in changes:
            p, gone = changes[k]
            front.difference_update(gone)
            front.add(p)
            exact = k in computed
            if exact:
                hv = hypervolume(front, ref)
        if exact:
            out.append((float(jobs[i].get("ended") or now), hv, i))
    return on_front, out


def objective_data(task: Mapping[str, Any], jobs: Sequence[dict[str, Any]], now: float) -> ObjectiveData | None:
    """The objectives part of the report of ``task`` (its row) and its ``jobs`` (rows, as
    ``Store.jobs`` gives them); None for a plain task (no ``objectives`` column)."""
    if not task.get("objectives"):
        return None
    spec = OutcomeSpec.from_task(task)
    n = len(spec.objectives)
    values = [job_values(j, n) for j in jobs]
    points = candidates(jobs, values)
    reference = spec.reference(points.values())
    on_front, series = pareto(spec, jobs, points, reference, now) if reference is not None else (set(), [])
    per_job = []
    for i, j in enumerate(jobs):
        violations = j.get("violations")
        per_job.append({
            "values": list(values[i]),
            # None in the row: the constraint's scalar was never reported (the job is infeasible)
            "violations": None if violations is None else [_finite(v) for v in violations],
            "feasible": None if j.get("feasible") is None else bool(j["feasible"]),
            "pareto": i in on_front,
        })
    summary = {
        "objectives": [{"name": o.name, "mode": o.mode.value} for o in spec.objectives],
        "constraints": [c.text for c in spec.constraints],
        "front": {"size": len(on_front), "hypervolume": series[-1][1] if series else None,
                  "reference": list(reference) if reference is not None else None,
                  # False: too many points in too many objectives to compute in time
                  "computed": not on_front or bool(series)},
    }
    return ObjectiveData(summary, per_job, series)
