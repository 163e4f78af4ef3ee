"""RandomSearcher: independent uniform draws from the space, each config proposed at most once."""
from __future__ import annotations

import math
import pickle
import random
import sys

from ..space import Dict, config_key, grid_size
from .base_searcher import BaseSearcher
from .builder import SEARCHERS


@SEARCHERS.register_module()
class RandomSearcher(BaseSearcher):
    """Samples configs with ``random.Random(seed)``; the same seed gives the same sequence.

    A finite space is exhausted once every config was proposed; ``max_draws`` bounds the redraws
    spent looking for an unseen config before it gives up.
    """

    uses_rewards = False  # a fixed sequence: it runs without scalars (MOCK_PAVI=2)

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = "maximize", seed: int | None = None,
                 max_draws: int = 1000) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        self.seed = seed
        self._rng = random.Random(seed)
        self._seen: set[str] = set()
        self._size = grid_size(search_space) if search_space.is_finite else math.inf
        self._max_draws = max_draws

    def get_config(self) -> dict | None:
        if len(self._seen) >= self._size:
            return None
        for _ in range(self._max_draws):
            config = self.space.sample(self._rng)
            key = config_key(config)
            if key not in self._seen:
                self._seen.add(key)
                self._results.setdefault(pickle.dumps(config), self._reward_while_pending())
                return config
        return None

    def __len__(self) -> int:
        if math.isinf(self._size):
            return sys.maxsize
        return int(self._size) - len(self._seen)
