"""GridSearcher: every combination of the search space, in order (the Cartesian product)."""
from __future__ import annotations

import itertools
from typing import Iterator

from gml_ray.config.render import arg_dict
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.space import Dict, Nested, config_key, grid, grid_size
from gml_ray.vocab import OptimizeMode


@SEARCHERS.register_module()
class GridSearcher(BaseSearcher):
    """Proposes each config of a finite space once, the first arg varying slowest.

    Where a later arg sets a key an earlier one set (a Nested dict's ``batch-size`` beside a
    ``batch-size`` arg), configs that would run the same job (the same ``arg_dict``) are proposed
    once, at the first one's place in the order.
    """

    uses_rewards = False  # a fixed sequence: it runs without scalars (MOCK_PAVI=2)
    multi_objective = True  # it learns nothing, so any number of objectives suits it
    handles_constraints = True

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE) -> None:
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
        if _overlapping(search_space):
            distinct: dict[str, tuple] = {}
            for combo in self._iter:
                key = config_key(arg_dict(search_space, dict(zip(keys, combo))))
                distinct.setdefault(key, combo)
            self._total = len(distinct)
            self._iter = iter(list(distinct.values()))

    def get_config(self) -> dict | None:
        combo = next(self._iter, None)
        if combo is None:
            return None
        self._produced += 1
        return self._proposed(dict(zip(self._keys, combo)))

    def __len__(self) -> int:
        return int(self._total) - self._produced


def _overlapping(space: Dict) -> bool:
    """Whether two args of ``space`` (at any File level) can set the same arg_dict key."""
    seen: set[str] = set()
    for key in space:
        sub = space[key]
        names = sub.keys if isinstance(sub, Nested) else [key]
        if isinstance(sub, Dict) and _overlapping(sub):
            return True
        if seen.intersection(names):
            return True
        seen.update(names)
    return False
