"""The searcher contract (ask/tell), shared by built-in and user searchers.

A searcher is a plain Python object (no Ray). The scheduler calls :meth:`get_config` for a new
config (``None`` when the search is exhausted), then :meth:`update` with the job's reward when a
job ends with one, or :meth:`job_failed` when it ends without (ERROR, KILLED, no scalar).
"""
from __future__ import annotations

import math
import pickle
import sys
from collections import OrderedDict
from typing import Any

from ..space import Dict


class BaseSearcher:
    """Base class: keeps every proposed config and its reward in ``_results``.

    Args:
        search_space: a :class:`gml_ray.space.Dict` of the task's args.
        reward_attribute: the scalar the search optimises.
        optimize_mode: ``maximize`` or ``minimize``.

    ``uses_rewards``: whether the proposals depend on rewards. A searcher that proposes a fixed
    sequence sets it False, so it may run under ``MOCK_PAVI=2`` (jobs report no scalars).
    """

    uses_rewards: bool = True

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = "maximize") -> None:
        if optimize_mode not in ("maximize", "minimize"):
            raise ValueError(f"optimize_mode must be maximize or minimize, got {optimize_mode!r}")
        self.space = search_space
        self.reward_attribute = reward_attribute
        self.optimize_mode = optimize_mode
        # pickle.dumps(config) -> reward; pending configs hold _reward_while_pending().
        self._results: OrderedDict[bytes, float] = OrderedDict()

    @property
    def search_space(self) -> Dict:
        return self.space

    def get_config(self) -> dict | None:
        """The next config to try, or None when there is nothing left to propose."""
        raise NotImplementedError  # abstract: every searcher implements its own proposal rule

    def update(self, config: dict, reward: float, **kwargs: Any) -> None:
        """Tell the searcher the reward a config reached (a finite number)."""
        self._results[pickle.dumps(config)] = reward

    def job_failed(self, config: dict, status: str) -> None:
        """Tell the searcher a config's job ended without a reward (status ERROR, KILLED, ...).

        The default forgets the pending entry, so it never counts as a result.
        """
        key = pickle.dumps(config)
        if key in self._results and self._results[key] == self._reward_while_pending():
            del self._results[key]

    def _reward_while_pending(self) -> float:
        """The placeholder reward of a proposed config whose job has not ended."""
        return -math.inf if self.optimize_mode == "maximize" else math.inf

    def is_better(self, a: float, b: float) -> bool:
        """Whether reward ``a`` beats ``b`` under ``optimize_mode``."""
        return a > b if self.optimize_mode == "maximize" else a < b

    def get_best_reward(self) -> float | None:
        rewards = [r for r in self._results.values() if math.isfinite(r)]
        if not rewards:
            return None
        return max(rewards) if self.optimize_mode == "maximize" else min(rewards)

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
