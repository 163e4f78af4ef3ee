"""GridSearcher: every combination of the search space, in order (the Cartesian product)."""
from __future__ import annotations

import itertools
import pickle
from typing import Iterator

from ..space import Dict, grid, grid_size
from .base_searcher import BaseSearcher
from .builder import SEARCHERS


@SEARCHERS.register_module()
class GridSearcher(BaseSearcher):
    """Proposes each config of a finite space once, the first arg varying slowest."""

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = "maximize") -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        for key, space in search_space.kwspaces.items():
            if not space.is_finite:
                raise ValueError(f"cannot enumerate arg {key!r} ({space!r}): give it a step, "
                                 f"or use RandomSearcher")
        keys = list(search_space)
        columns = [grid(search_space[k]) for k in keys]
        self._total = grid_size(search_space)
        self._produced = 0
        self._iter: Iterator[tuple] = itertools.product(*columns)
        self._keys = keys

    def get_config(self) -> dict | None:
        combo = next(self._iter, None)
        if combo is None:
            return None
        self._produced += 1
        config = dict(zip(self._keys, combo))
        self._results.setdefault(pickle.dumps(config), self._reward_while_pending())
        return config

    def __len__(self) -> int:
        return int(self._total) - self._produced
