"""Population Based Training (Jaderberg et al. 2017, "Population Based Training of Neural
Networks"): the decisions, without Ray.

The task's searcher proposes the first ``population_size`` configs. Whenever a member announces a
checkpoint at least ``perturbation_interval`` steps after its last decision, it is ranked among
the population by the value each member had reported of the reward attribute at that step (its
last one at or before it): members that started earlier are not ranked on training the others
have not had yet. (The paper and Ray Tune rank on each member's latest value; with members
started seconds apart on a busy cluster, the earliest one then wins every early decision.)
Members that finished stay in the ranking, and are donors (from their newest checkpoint, which
is kept) when no running member of the top quantile has a checkpoint: on a busy machine a member
can finish before another has started, and the late one is then still ranked against it. (Ray Tune's PBT drops finished trials, so a population that does not
run at the same time never exploits.) A decision needs two ranked members; a member alone at
its step decides again at its next checkpoint. A member in the bottom
``quantile_fraction`` *exploits*: it stops, and a new job continues from the checkpoint of a
member drawn from the top ``quantile_fraction``, with that member's args *explored*: each
mutable arg is drawn afresh with ``resample_probability``, else a Real or Int is multiplied by
0.8 or 1.2 (kept within its bounds and on its step) and a Categorical moves to a neighbouring
choice. The new job takes the stopped member's place in the population; its lineage (parent job,
the parent's step, its args and the parent's) is kept in the store. With ``explore: pb2`` the
Real and Int args of a new job come from PB2's bandit instead (:mod:`gml_ray.engine.pb2`).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from gml_ray.config.checkpointing import PbtConfig
from gml_ray.engine.pb2 import Pb2Explorer
from gml_ray.optimize import sign
from gml_ray.space import Categorical, Dict, Int, Nested, Real

PERTURB_FACTORS = (0.8, 1.2)


@dataclass
class Member:
    """A job of the population, as PBT sees it."""

    job_id: int
    config: dict
    start_step: int = -1  # the step it started after (its parent's checkpoint step; -1: fresh)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, reward value), as reported
    last_decision: int = -1  # the step of its last exploit-or-not decision
    checkpoint_step: int | None = None  # its newest announced checkpoint
    finished: bool = False  # it ran to its end: ranked and a donor, never a loser


@dataclass
class Exploit:
    """A decision: ``loser`` stops; a new job continues ``donor`` from its checkpoint with ``config``."""

    loser: int
    donor: int
    step: int  # the donor's checkpoint step the new job starts after
    config: dict
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # arg -> (donor's value, new value)


class PopulationBasedTraining:
    """PBT's state for one run: the population and its decisions."""

    def __init__(self, cfg: PbtConfig, space: Dict, optimize_mode: str) -> None:
        self.cfg, self.space, self.sign = cfg, space, sign(optimize_mode)
        self.rng = random.Random(cfg.seed)
        self.members: dict[int, Member] = {}
        self.proposed = 0  # configs the searcher gave (the first population_size)
        # explore: pb2 models the Real and Int args (the rest are explored as PBT does)
        self.pb2 = Pb2Explorer(space, cfg.mutable, cfg.seed) if cfg.explore == "pb2" else None

    def wants_config(self) -> bool:
        """Whether the searcher still fills the population (its first ``population_size`` configs)."""
        return self.proposed < self.cfg.population_size

    def joined(self, job_id: int, config: dict, start_step: int = -1, parent: int | None = None) -> None:
        """A job of the population started (a searcher's config, or an exploit's new job that
        continues ``parent`` after ``start_step``: its curve so far is the parent's to there)."""
        donor = self.members.get(parent) if parent is not None else None
        curve = [(s, v) for s, v in donor.curve if s <= start_step] if donor is not None else []
        self.members[job_id] = Member(job_id, config, start_step, curve, last_decision=start_step)

    def left(self, job_id: int, finished: bool = False) -> None:
        """A member ended. One that ``finished`` stays ranked and a donor (from its newest
        checkpoint, which is kept); one that failed, was stopped or exploited leaves."""
        member = self.members.get(job_id)
        if member is not None and finished:
            member.finished = True
        else:
            self.members.pop(job_id, None)

    def reported(self, job_id: int, points: list[tuple[int | None, float]]) -> None:
        """A member reported reward values: (step, value) pairs (pairs without a step are not ranked)."""
        member = self.members.get(job_id)
        if member is not None:
            member.curve.extend((s, v) for s, v in points if s is not None)

    def checkpointed(self, job_id: int, step: int) -> Exploit | None:
        """A member announced a checkpoint at ``step``: the exploit it leads to, or None."""
        member = self.members.get(job_id)
        if member is None or member.finished:
            return None
        member.checkpoint_step = step
        if step - member.last_decision < self.cfg.perturbation_interval or _value_at(member, step) is None:
            return None
        values = {m.job_id: _value_at(m, step) for m in self.members.values()}
        scored = [(self.sign * v, m.job_id, m) for m in self.members.values() if (v := values[m.job_id]) is not None]
        ranked = [m for _, _, m in sorted(scored, key=lambda t: (t[0], t[1]))]  # worst first
        if len(ranked) < 2:
            return None  # nobody to compare with yet: no decision, the next checkpoint tries again
        before = _value_at(member, member.last_decision) if member.last_decision >= 0 else None
        if self.pb2 is not None and before is not None:  # what its args did over the interval
            self.pb2.observe(step, member.config, self.sign * (values[job_id] - before))  # type: ignore[operator]
        member.last_decision = step
        n = max(1, int(math.floor(len(ranked) * self.cfg.quantile_fraction)))
        if member not in ranked[:n]:
            return None
        donors = [(m, m.checkpoint_step) for m in ranked[-n:] if m.job_id != job_id]
        usable = [(m, s) for m, s in donors if s is not None]
        # A running donor first: copying a finished line's last checkpoint trains nothing more.
        usable = [(m, s) for m, s in usable if not m.finished] or usable
        if not usable:
            return None
        donor, donor_step = self.rng.choice(usable)
        config, changed = self.explore(donor.config, donor_step)
        return Exploit(job_id, donor.job_id, donor_step, config, changed)

    def explore(self, config: dict, step: int = 0) -> tuple[dict, dict[str, tuple[Any, Any]]]:
        """A perturbed copy of ``config`` for a member continuing after ``step``, and what
        changed (arg -> (old, new)). With ``explore: pb2`` the Real and Int args come from PB2."""
        new = dict(config)
        modelled = self.pb2.propose(step, config) if self.pb2 is not None else {}
        for name in self.cfg.mutable:
            space = self.space[name]
            old = config.get(name)
            if name in modelled:
                new[name] = modelled[name]
            elif self.rng.random() < self.cfg.resample_probability:
                new[name] = space.sample(self.rng)
            elif isinstance(space, Categorical) and not isinstance(space, Nested):
                new[name] = _neighbour(space, old, self.rng)
            elif isinstance(space, (Real, Int)) and isinstance(old, (int, float)):
                new[name] = _scaled(space, old, self.rng.choice(PERTURB_FACTORS))
            else:
                new[name] = space.sample(self.rng)
        return new, {k: (config.get(k), v) for k, v in new.items() if v != config.get(k)}


def _value_at(member: Member, step: int) -> float | None:
    """The member's reward value at ``step``: its last report at or before it (None if none).
    Its own line before it started counts (a PBT job's curve begins with its parent's)."""
    best_step, value = None, None
    for s, v in member.curve:
        if s <= step and (best_step is None or s >= best_step):
            best_step, value = s, v
    return value


def _neighbour(space: Categorical, value: Any, rng: random.Random) -> Any:
    """The choice next to ``value`` (one to its left or right, within the list)."""
    try:
        i = space.data.index(value)
    except ValueError:
        return space.sample(rng)
    j = min(len(space.data) - 1, max(0, i + rng.choice((-1, 1))))
    return space.data[j]


def _scaled(space: Real | Int, value: float, factor: float) -> float | int:
    """``value * factor`` within the arg's bounds, on its step."""
    return space.nearest(value * factor)
