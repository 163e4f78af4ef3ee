"""BatchSearcher: runs a fixed list of configs, the entries of the Nested args, in order (manual 2.3.1)."""
from __future__ import annotations

import itertools
from typing import Iterator

from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.space import Dict, Nested, Space
from gml_ray.vocab import OptimizeMode

_PLAIN = (str, int, float, bool, type(None))


@SEARCHERS.register_module()
class BatchSearcher(BaseSearcher):
    """Proposes each entry of the Nested arg in the order written, then None; no optimisation.

    Every search arg must be Nested, and every value inside its entries a plain scalar (str,
    number, bool, null); anything else is a ValueError naming the arg. With several Nested args,
    every combination is proposed, the first arg varying slowest.
    """

    uses_rewards = False  # a fixed sequence: it runs without scalars (MOCK_PAVI=2)
    multi_objective = True  # it learns nothing, so any number of objectives suits it
    handles_constraints = True

    def __init__(self, search_space: Dict, reward_attribute: str = "acc",
                 optimize_mode: str = OptimizeMode.MAXIMIZE) -> None:
        super().__init__(search_space, reward_attribute, optimize_mode)
        keys = list(search_space)
        if not keys:
            raise ValueError("BatchSearcher needs a Nested arg with the configs to run")
        columns = []
        for key in keys:
            space = search_space[key]
            if not isinstance(space, Nested):
                kind = type(space).__name__ if isinstance(space, Space) else "a constant"
                raise ValueError(f"BatchSearcher takes only Nested args, but arg {key!r} is {kind}")
            for entry in space.data:
                for name, value in entry.items():
                    if not isinstance(value, _PLAIN):
                        raise ValueError(f"BatchSearcher: arg {key!r}: {name!r} must be a plain value "
                                         f"(str, number, bool), got {value!r}")
            columns.append(space.data)
        self._keys = keys
        self._total = 1
        for column in columns:
            self._total *= len(column)
        self._produced = 0
        self._iter: Iterator[tuple] = itertools.product(*columns)

    def get_config(self) -> dict | None:
        combo = next(self._iter, None)
        if combo is None:
            return None
        self._produced += 1
        return self._proposed({key: dict(entry) for key, entry in zip(self._keys, combo)})

    def __len__(self) -> int:
        return self._total - self._produced
