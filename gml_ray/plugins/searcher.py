"""The searcher contract (ask/tell), shared by built-in and user searchers.

A searcher is a plain Python object (no Ray). The scheduler calls :meth:`get_config` for a new
config (``None`` when the search is exhausted), then :meth:`update` with the job's reward when a
job ends with one, or :meth:`job_failed` when it ends without (ERROR, KILLED, no scalar).
"""
from __future__ import annotations

import math
import pickle
import sys
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, ClassVar

from gml_ray.objectives import Outcome, OutcomeSpec
from gml_ray.optimize import best, is_better, sign, worst_reward
from gml_ray.plugins.registry import Registry
from gml_ray.space import Dict, config_key
from gml_ray.vocab import JobStatus, OptimizeMode

SEARCHERS = Registry("searcher", locations=["gml_ray.searchers"])
"""``searcher.type`` in a config names a class registered here."""


class BaseSearcher(ABC):
    """The ask/tell contract (manual 5.3), and the bookkeeping every searcher shares.

    Args:
        search_space: a :class:`gml_ray.space.Dict` of the task's args.
        reward_attribute: the scalar the search optimises.
        optimize_mode: ``maximize`` or ``minimize``.

    A searcher implements :meth:`get_config` (its proposal rule) and, when it learns, the hooks
    :meth:`_on_result` / :meth:`_on_failure`. The base keeps, under one key per config
    (:meth:`key`): ``seen`` (proposed or told), ``pending`` (proposed, no result yet),
    ``failed`` (key -> status), ``history`` ((config, reward or None) in the order results came)
    and ``_results`` (the manual's plugin view: ``pickle.dumps(config)`` -> reward, a placeholder
    while pending). A built-in searcher returns each config through :meth:`_proposed`.

    ``uses_rewards``: whether the proposals depend on rewards. A searcher that proposes a fixed
    sequence sets it False, so it may run under ``MOCK_PAVI=2`` (jobs report no scalars).

    Several objectives and constraints (:mod:`gml_ray.objectives`): the engine sets
    :attr:`outcome_spec`, and :meth:`update` then gets each job's ``values`` and ``violations``
    (kept in :attr:`outcomes`). A task with several objectives runs only searchers that set
    ``multi_objective``. A searcher that does not set ``handles_constraints`` learns an infeasible
    job's reward as the worst reward told so far (a penalty: the search leaves that region).
    """

    uses_rewards: bool = True
    multi_objective: ClassVar[bool] = False
    """Takes several objectives: its :meth:`_on_result` reads ``self.outcomes[key]``."""
    handles_constraints: bool = False
    """Learns from constraint violations itself (else infeasible rewards are told as a penalty)."""
    outcome_spec: OutcomeSpec | None = None
    """The task's objectives and constraints (None: the single ``reward_attribute``)."""

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE) -> None:
        optimize_mode = OptimizeMode.parse(optimize_mode)
        self.space = search_space
        self.reward_attribute = reward_attribute
        self.optimize_mode = optimize_mode
        self.seen: set[str] = set()
        self.pending: dict[str, dict] = {}
        self.failed: dict[str, str] = {}
        self.history: list[tuple[dict, float | None]] = []
        # pickle.dumps(config) -> reward; pending configs hold _reward_while_pending().
        self._results: OrderedDict[bytes, float] = OrderedDict()
        self.outcomes: dict[str, Outcome] = {}  # config key -> its job's outcome (several objectives, constraints)

    @property
    def search_space(self) -> Dict:
        return self.space

    @staticmethod
    def key(config: dict) -> str:
        """The one key of a config in every table (equal for equal configs, whatever the order)."""
        return config_key(config)

    @abstractmethod
    def get_config(self) -> dict | None:
        """Called by the scheduler whenever a job slot is free: the next config to try, or None
        when there is nothing left to propose (the search then ends once running jobs do). Never
        returns a config it returned before."""

    def _proposed(self, config: dict) -> dict:
        """Record ``config`` as proposed (pending) and return it: ``return self._proposed(c)``."""
        key = self.key(config)
        self.seen.add(key)
        self.pending[key] = config
        self._results.setdefault(pickle.dumps(config), self._reward_while_pending())
        return config

    def update(self, config: dict, reward: float, **kwargs: Any) -> None:
        """Called once per job that ended with a reward (its best ``reward_attribute`` value), and
        on ``--resume`` for every earlier one. A reward that is not a finite number counts as a
        failure. Subclasses learn in :meth:`_on_result`.

        With several objectives or constraints, ``kwargs`` holds ``values`` (each objective's
        value, in order; ``reward`` is the first) and ``violations`` (each constraint's, <= 0
        when it holds); a job missing an objective's value counts as a failure."""
        outcome = Outcome(tuple(kwargs["values"]), tuple(kwargs.get("violations") or ())) \
            if kwargs.get("values") is not None else None
        if reward is None or not math.isfinite(reward) or (outcome is not None and not outcome.complete):
            self.job_failed(config, "NO_REWARD")
            return
        key = self.key(config)
        was_pending = self.pending.pop(key, None) is not None
        self.seen.add(key)
        reward = float(reward)
        if outcome is not None:
            self.outcomes[key] = outcome
            if not outcome.feasible and not self.handles_constraints:
                reward = self._penalty(reward)
        self.history.append((config, reward))
        self._results[pickle.dumps(config)] = reward
        self._on_result(config, reward, was_pending)

    def _penalty(self, reward: float) -> float:
        """What an infeasible job's reward is learnt as: the worst reward told so far (or its own,
        if that is worse)."""
        told = [r for _, r in self.history if r is not None]
        return min([reward, *told], key=lambda r: sign(self.optimize_mode) * r)

    def tell(self, config: dict, reward: float | None, status: str, outcome: Outcome | None = None) -> None:
        """How the engine reports a job's end: :meth:`update` with its reward (and, for a task
        with several objectives or constraints, its ``outcome``) unless it ended ERROR or without
        a reward; else :meth:`job_failed`. Not meant to be overridden."""
        if reward is None or status == JobStatus.ERROR:
            self.job_failed(config, status)
        elif outcome is not None:
            self.update(config, reward, values=list(outcome.values), violations=list(outcome.violations))
        else:
            self.update(config, reward)

    def job_failed(self, config: dict, status: str) -> None:
        """Called instead of :meth:`update` for a job that ended without a reward (ERROR, KILLED
        without a scalar, FILTERED, ...): it never counts as a result, and its config is not
        proposed again. Subclasses react in :meth:`_on_failure`."""
        key = self.key(config)
        self.pending.pop(key, None)
        self.seen.add(key)
        self.failed[key] = status
        self.history.append((config, None))
        pkey = pickle.dumps(config)
        if pkey in self._results and self._results[pkey] == self._reward_while_pending():
            del self._results[pkey]
        self._on_failure(config, status)

    def _on_result(self, config: dict, reward: float, was_pending: bool) -> None:
        """Hook: learn from a result (``was_pending`` False: told without being proposed here,
        e.g. an earlier run's result on ``--resume``). The default learns nothing."""
        return None

    def _on_failure(self, config: dict, status: str) -> None:
        """Hook: a proposed config ended without a reward. The default does nothing more."""
        return None

    def warm_started(self, told: int) -> None:
        """Hook: the last ``told`` results told (before the first proposal) came from other tasks
        (``--warm-start-from``), not from this task's earlier run: a searcher that treats results
        told on ``--resume`` as its own earlier proposals (its seeded sampler will draw them
        again) does not count these. Called once, right after them. The default does nothing."""
        return None

    def _reward_while_pending(self) -> float:
        """The placeholder reward of a proposed config whose job has not ended."""
        return worst_reward(self.optimize_mode)

    def is_better(self, a: float, b: float | None) -> bool:
        """Whether reward ``a`` beats ``b`` (None: nothing yet) under ``optimize_mode``."""
        return is_better(a, b, self.optimize_mode)

    def get_best_reward(self) -> float | None:
        rewards = [r for r in self._results.values() if math.isfinite(r)]
        if not rewards:
            return None
        return best(rewards, self.optimize_mode)

    def get_best_config(self) -> dict | None:
        best = self.get_best_reward()
        for key, reward in self._results.items():
            if reward == best:
                return pickle.loads(key)
        return None

    def __len__(self) -> int:
        """How many configs are left to propose (``sys.maxsize`` when unbounded)."""
        return sys.maxsize

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reward_attribute={self.reward_attribute!r}, " \
               f"optimize_mode={self.optimize_mode!r})"


def build_searcher(cfg: dict[str, Any], search_space: Dict) -> BaseSearcher:
    """Build ``cfg['type']`` with the other keys as kwargs and ``search_space`` as first argument."""
    return SEARCHERS.build(cfg, search_space=search_space)
