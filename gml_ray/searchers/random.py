"""RandomSearcher: independent uniform draws from the space, each config proposed at most once."""
from __future__ import annotations

import math
import random
import sys

from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.space import Dict, grid_size
from gml_ray.vocab import OptimizeMode


@SEARCHERS.register_module()
class RandomSearcher(BaseSearcher):
    """Samples configs with ``random.Random(seed)``; the same seed gives the same sequence.

    A finite space is exhausted once every config was proposed; ``max_draws`` bounds the redraws
    spent looking for an unseen config before it gives up.
    """

    uses_rewards = False  # a fixed sequence: it runs without scalars (MOCK_PAVI=2)
    multi_objective = True  # it learns nothing, so any number of objectives suits it
    handles_constraints = True

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE, seed: int | None = None,
                 max_draws: int = 1000) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        self.seed = seed
        self._rng = random.Random(seed)
        self._size = grid_size(search_space) if search_space.is_finite else math.inf
        self._max_draws = max_draws

    def get_config(self) -> dict | None:
        if len(self.seen) >= self._size:
            return None
        for _ in range(self._max_draws):
            config = self.space.sample(self._rng)
            if self.key(config) not in self.seen:
                return self._proposed(config)
        return None

    def __len__(self) -> int:
        if math.isinf(self._size):
            return sys.maxsize
        return int(self._size) - len(self.seen)
