"""Several objectives and outcome constraints: what a job's outcome is, and the Pareto front.

A task optimises one or more *objectives* (reported scalars, each maximised or minimised) under
zero or more *constraints* (``"latency_ms <= 20"``). A job's :class:`Outcome` is its value of each
objective and each constraint's violation; it is *feasible* when every constraint holds. The
front is the set of feasible outcomes no other feasible outcome dominates.

Which value counts: with one objective and no constraint, the manual's rule (the best value the job
reported). With several objectives, each one's **last** reported value: the values of the one model
the job ended with (each one's best could come from different steps no single model had). A
constraint always reads its scalar's last reported value; a job that never reported it is infeasible.
"""
from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from gml_ray.optimize import best, has_result, sign
from gml_ray.vocab import OptimizeMode

CONSTRAINT = re.compile(r"^\s*(?P<tag>[^<>=!\s][^<>=!]*?)\s*(?P<op><=|>=|<|>)\s*(?P<bound>\S+)\s*$")
OPERATORS = ("<=", "<", ">=", ">")


@dataclass(frozen=True)
class Objective:
    """One reported scalar the search optimises, and in which direction."""

    name: str
    mode: OptimizeMode


@dataclass(frozen=True)
class Constraint:
    """``tag op bound``: a scalar's last value must satisfy it for the job to be feasible."""

    tag: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        return f"{self.tag} {self.op} {self.bound:g}"

    def violation(self, value: float | None) -> float:
        """By how much ``value`` breaks the constraint, Optuna's way: <= 0 when it holds, > 0 when
        not (a strict bound met exactly: the smallest positive float); inf when there is no value."""
        if value is None or not math.isfinite(value):
            return math.inf
        c = value - self.bound if self.op in ("<=", "<") else self.bound - value
        if c == 0 and self.op in ("<", ">"):
            return 5e-324  # on a strict bound: broken, by as little as a float can say
        return c


def parse_constraint(text: Any) -> Constraint:
    """``"latency_ms <= 20"`` → a :class:`Constraint`; ValueError with what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"must be text like 'latency_ms <= 20', got {text!r}")
    m = CONSTRAINT.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not 'scalar OP number' with OP one of {', '.join(OPERATORS)}")
    try:
        bound = float(m["bound"])
    except ValueError:
        raise ValueError(f"{text!r}: the bound {m['bound']!r} is not a number") from None
    if not math.isfinite(bound):
        raise ValueError(f"{text!r}: the bound must be a finite number")
    return Constraint(m["tag"].strip(), m["op"], bound)


@dataclass(frozen=True)
class Outcome:
    """A job's objective values (None where it reported none) and its constraints' violations."""

    values: tuple[float | None, ...]
    violations: tuple[float, ...] = ()

    @property
    def feasible(self) -> bool:
        """Every constraint holds (no constraint: always)."""
        return all(v <= 0 for v in self.violations)

    @property
    def complete(self) -> bool:
        """Every objective has a finite value."""
        return all(v is not None and math.isfinite(v) for v in self.values)


@dataclass(frozen=True)
class OutcomeSpec:
    """A task's objectives (at least one) and constraints, and its hypervolume reference point."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    reference_point: tuple[float, ...] | None = None

    @property
    def primary(self) -> Objective:
        """The first objective: the job's ``reward`` column, the default assessor objective."""
        return self.objectives[0]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def plain(self) -> bool:
        """One objective, no constraint: the manual's single reward, nothing more to keep."""
        return not self.multi and not self.constraints

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def modes(self) -> list[OptimizeMode]:
        return [o.mode for o in self.objectives]

    @property
    def tags(self) -> set[str]:
        """Every scalar the outcome reads."""
        return {*self.names, *(c.tag for c in self.constraints)}

    def objective(self, name: str) -> Objective:
        for o in self.objectives:
            if o.name == name:
                return o
        raise KeyError(name)

    def outcome(self, last: Mapping[str, float | None]) -> Outcome:
        """The outcome of a job whose last finite values are ``last`` (tag → value)."""
        return Outcome(tuple(last.get(n) for n in self.names),
                       tuple(c.violation(last.get(c.tag)) for c in self.constraints))

    def to_json(self) -> str:
        """The task row's ``objectives`` column."""
        return json.dumps({"objectives": [[o.name, o.mode.value] for o in self.objectives],
                           "constraints": [c.text for c in self.constraints],
                           "reference_point": list(self.reference_point) if self.reference_point else None})

    @classmethod
    def from_task(cls, task: Mapping[str, Any]) -> "OutcomeSpec":
        """The spec of a task row (a task without the column: its single reward)."""
        raw = task.get("objectives")
        if raw:
            data = json.loads(raw)
            return cls(tuple(Objective(n, OptimizeMode.parse(m)) for n, m in data["objectives"]),
                       tuple(parse_constraint(c) for c in data.get("constraints") or ()),
                       tuple(data["reference_point"]) if data.get("reference_point") else None)
        return cls((Objective(task.get("reward_attribute") or "acc",
                              OptimizeMode.parse(task.get("optimize_mode") or OptimizeMode.MAXIMIZE)),))

    def scores(self, values: Sequence[float]) -> tuple[float, ...]:
        """``values`` signed so that larger is better on every objective."""
        return tuple(sign(m) * v for m, v in zip(self.modes, values))

    def reference(self, points: Iterable[Sequence[float]]) -> tuple[float, ...] | None:
        """The hypervolume's reference point: the configured one, else each objective's worst value
        among ``points`` moved outwards by a tenth of its observed range (1 when the range is 0),
        so that the front's extreme points add volume too. None without points."""
        if self.reference_point is not None:
            return tuple(self.reference_point)
        pts = [self.scores(p) for p in points]
        if not pts:
            return None
        ref = []
        for i, mode in enumerate(self.modes):
            lo, hi = min(p[i] for p in pts), max(p[i] for p in pts)
            ref.append(sign(mode) * (lo - ((hi - lo) / 10 or 1.0)))
        return tuple(ref)

    def hypervolume(self, points: Iterable[Sequence[float]], reference: Sequence[float] | None = None) -> float:
        """The volume ``points`` dominate up to ``reference`` (default :meth:`reference`)."""
        pts = [tuple(p) for p in points]
        ref = tuple(reference) if reference is not None else self.reference(pts)
        if ref is None:
            return 0.0
        return hypervolume([self.scores(p) for p in pts], self.scores(ref))


def outcome_of_series(spec: OutcomeSpec, series: Mapping[str, Sequence[float | None]]
                      ) -> tuple[float | None, Outcome | None]:
    """An ended job's reward and outcome (None for a plain task) from each tag's values in report
    order (None: reported, but not a finite number), by the rule of this module's docstring."""
    finite = [v for v in series.get(spec.primary.name) or [] if v is not None]
    reward = best(finite, spec.primary.mode) if finite else None
    if spec.plain:
        return reward, None
    outcome = spec.outcome({tag: values[-1] for tag, values in series.items() if values})
    return (outcome.values[0] if spec.multi else reward), outcome


def row_outcome(job: Mapping[str, Any]) -> Outcome | None:
    """The outcome a job row holds (its ``rewards``, ``violations``), None for a plain task's job."""
    values = job.get("rewards")
    if values is None:
        return None
    violations = job.get("violations") or ()
    return Outcome(tuple(values), tuple(math.inf if v is None else v for v in violations))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Score vector ``a`` (larger is better) dominates ``b``: no worse anywhere, better somewhere."""
    better = False
    for x, y in zip(a, b):
        if x < y:
            return False
        if x > y:
            better = True
    return better


def front_indices(scores: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the score vectors (larger is better) that no other one dominates (equal vectors
    are all on the front). Lexicographically best first, each is checked against the front so far
    in one vector operation: nothing later dominates an earlier one."""
    if not len(scores):
        return []
    pts = np.asarray(scores, dtype=float)
    order = np.lexsort(tuple(-pts[:, i] for i in reversed(range(pts.shape[1]))))
    front = np.empty((0, pts.shape[1]))
    kept: list[int] = []
    for i in order:
        v = pts[i]
        if len(front) and ((front >= v).all(axis=1) & (front > v).any(axis=1)).any():
            continue
        front = np.vstack([front, v])
        kept.append(int(i))
    return sorted(kept)


def _insert(ys: list[float], zs: list[float], y: float, z: float, ry: float, rz: float) -> float:
    """Add (y, z) to a staircase (``ys`` rising, ``zs`` falling: points none of which dominates
    another, above (ry, rz)); return the area this adds to the region the staircase dominates."""
    j = bisect.bisect_left(ys, y)  # ys[j:] >= y
    if j < len(ys) and zs[j] >= z:
        return 0.0  # dominated
    # Above y: the region is zs[j] high (nothing: rz). Walking down in y, every point with z <= z
    # is dominated by (y, z): the area between its height and z is added, then it goes.
    height, top, added, i = (zs[j] if j < len(ys) else rz), y, 0.0, j - 1
    while i >= 0 and zs[i] <= z:
        added += (top - ys[i]) * (z - height)
        top, height, i = ys[i], zs[i], i - 1
    added += (top - (ys[i] if i >= 0 else ry)) * (z - height)
    end = j + 1 if j < len(ys) and ys[j] == y else j  # a point at the same y, lower: dominated too
    ys[i + 1:end], zs[i + 1:end] = [y], [z]
    return added


def hypervolume(points: Iterable[Sequence[float]], ref: Sequence[float]) -> float:
    """Exact hypervolume of score vectors (larger is better) above ``ref``. A sweep along the first
    objective: the best second value so far for two; the area of the last two's staircase, kept
    as each point comes, for three (O(n log n) and O(n^2)); slices of three for more."""
    d = len(ref)
    pts = sorted((tuple(p) for p in points if all(x > r for x, r in zip(p, ref))), reverse=True)
    if not pts:
        return 0.0
    if d == 1:
        return pts[0][0] - ref[0]
    total, area = 0.0, 0.0
    ys: list[float] = []  # three objectives: the staircase of the last two
    zs: list[float] = []
    for k, p in enumerate(pts):  # the first objective falling: the slab down to the next point
        below = pts[k + 1][0] if k + 1 < len(pts) else ref[0]
        if d == 2:
            area = max(area, p[1] - ref[1])
        elif d == 3:
            area += _insert(ys, zs, p[1], p[2], ref[1], ref[2])
        elif p[0] > below:
            area = hypervolume([q[1:] for q in pts[:k + 1]], ref[1:])
        total += (p[0] - below) * area
    return total



@dataclass
class ParetoArchive:
    """The feasible, complete outcomes of a running task and their front, kept up to date as jobs
    report (a job's point moves as its last values change)."""

    spec: OutcomeSpec
    points: dict[Hashable, tuple[float, ...]] = field(default_factory=dict)  # key -> scores
    _front: dict[Hashable, tuple[float, ...]] | None = field(default_factory=dict)

    def put(self, key: Hashable, outcome: Outcome | None) -> None:
        """Record ``key``'s outcome (None, incomplete or infeasible: it leaves the archive)."""
        old = self.points.pop(key, None)
        if self._front is not None and old is not None and key in self._front:
            self._front = None  # a front point moved: what it dominated may come back
        if outcome is None or not outcome.complete or not outcome.feasible:
            return
        p = self.spec.scores(outcome.values)  # type: ignore[arg-type]
        self.points[key] = p
        if self._front is None:
            return
        if any(dominates(q, p) for q in self._front.values()):
            return
        self._front = {k: q for k, q in self._front.items() if not dominates(p, q)}
        self._front[key] = p

    def front(self) -> dict[Hashable, tuple[float, ...]]:
        """Key → objective values (in their own signs) of the non-dominated points."""
        if self._front is None:
            keys = list(self.points)
            self._front = {keys[i]: self.points[keys[i]] for i in front_indices([self.points[k] for k in keys])}
        return {k: self.spec.scores(q) for k, q in self._front.items()}  # signs undone (sign is ±1)


def reaches(values: Sequence[float], targets: Sequence[float], spec: OutcomeSpec) -> bool:
    """Every objective value is at or beyond its target (at or below it when minimised)."""
    return all(s >= t for s, t in zip(spec.scores(values), spec.scores(targets)))


@dataclass
class Front:
    """A task's Pareto front, read from its job rows."""

    spec: OutcomeSpec
    members: list[dict[str, Any]]  # the job rows on the front, in job order
    reference: tuple[float, ...] | None  # the hypervolume's reference point
    hypervolume: float
    considered: int  # jobs with a feasible, complete result

    @property
    def names(self) -> set[str]:
        return {j["name"] for j in self.members}


def task_front(task: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]]) -> Front | None:
    """The front of a task with an ``objectives`` column (None for a single-reward task): among
    jobs whose result counts (:func:`~gml_ray.optimize.has_result`: not ERROR, feasible), those
    with every objective's value that no other such job dominates."""
    if not task.get("objectives"):
        return None
    spec = OutcomeSpec.from_task(task)
    done = [dict(j) for j in jobs if has_result(j) and j.get("rewards") is not None
            and Outcome(tuple(j["rewards"])).complete]
    values = [tuple(j["rewards"]) for j in done]
    members = [done[i] for i in front_indices([spec.scores(v) for v in values])]
    reference = spec.reference(values)
    hv = spec.hypervolume([tuple(j["rewards"]) for j in members], reference) if members else 0.0
    return Front(spec, members, reference, hv, len(done))


FRONT_COLUMNS = ("status", "reward", "rewards", "feasible")
"""The job-row columns :func:`task_front` reads (``Store.jobs(columns=...)``)."""


def front_summary(front: Front) -> dict[str, Any]:
    """What a task summary (``ctl show --out``, ``summary.yaml``) says of its objectives and front."""
    return {"objectives": {o.name: o.mode.value for o in front.spec.objectives},
            "constraints": [c.text for c in front.spec.constraints],
            "front": [j["name"] for j in front.members],
            "hypervolume": front.hypervolume,
            "reference_point": list(front.reference) if front.reference is not None else None}


def job_outcome(job: Mapping[str, Any], front: Front) -> dict[str, Any]:
    """What a job summary says of its outcome: each objective's value, each constraint's
    violation (None: never reported), whether it is feasible and on the front."""
    values = job.get("rewards") or [None] * len(front.spec.objectives)
    out: dict[str, Any] = {"values": dict(zip(front.spec.names, values)), "pareto": job["name"] in front.names}
    if front.spec.constraints:
        out["violations"] = dict(zip((c.text for c in front.spec.constraints), job.get("violations") or []))
        out["feasible"] = None if job.get("feasible") is None else bool(job["feasible"])
    return out
