"""A search space seen as a flat vector of leaves, for searchers that work on vectors.

Model-based searchers (Skopt, Evolution) want one coordinate per searched value, while a config is
a nested dict (``{arg: value}``, ``{nested_key: chosen_dict}``, ``{file_arg: {child: value}}``).
:class:`FlatSpace` walks a :class:`~gml_ray.space.Dict` once and converts both ways: ``decode``
builds a config from one coordinate per leaf, ``encode`` maps a config (e.g. one told on resume)
back, or returns None when it does not fit the space.

Each leaf is one of three kinds:

* ``categorical``: Categorical and Nested; the coordinate is the index of the choice (unordered).
* ``ordinal``: Int and Real with ``step``; the coordinate is the index on the grid (ordered).
* ``real``: Real without ``step``; the coordinate is the float itself (``log`` kept for scaling).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from gml_ray.space import Categorical, Dict, Int, List, Real, Space, config_key

CATEGORICAL, ORDINAL, REAL = "categorical", "ordinal", "real"


@dataclass
class Leaf:
    """One searched value: where it sits in a config (``path``) and how it is coded."""

    path: tuple[Any, ...]  # keys (and list indices) from the config's root to the value
    space: Space
    kind: str
    size: int = 0  # number of values (categorical, ordinal); 0 for real
    _lookup: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The flat name users see (``config.epochs``), as in ``Dict.kwspaces``."""
        return ".".join(str(p) for p in self.path)

    def value(self, coord: Any) -> Any:
        """The config value for a coordinate (an index, or a float for ``real``)."""
        space = self.space
        if self.kind == CATEGORICAL:
            return copy.deepcopy(space.data[int(coord)])  # type: ignore[attr-defined]
        if self.kind == ORDINAL:
            i = int(coord)
            if isinstance(space, Int):
                return space.lower + i * space.step
            return space.data[i]  # type: ignore[attr-defined]
        value = float(coord)
        return min(max(value, space.lower), space.upper)  # type: ignore[attr-defined]

    def coord(self, value: Any) -> Any | None:
        """The coordinate of a config value, or None when the value is not in this space."""
        space = self.space
        if self.kind == CATEGORICAL:
            return self._lookup.get(config_key(value))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if self.kind == ORDINAL:
            if isinstance(space, Int):
                offset = value - space.lower
                if offset % space.step or not 0 <= offset // space.step < self.size:
                    return None
                return int(offset // space.step)
            i = int(round((value - space.lower) / space.step))  # type: ignore[attr-defined]
            grid_value = space.data[i] if 0 <= i < self.size else None  # type: ignore[attr-defined]
            if grid_value is not None and math.isclose(grid_value, value, rel_tol=1e-9, abs_tol=1e-12):
                return i
            return None
        if not space.lower <= value <= space.upper:  # type: ignore[attr-defined]
            return None
        return float(value)


def make_leaf(path: tuple[Any, ...], space: Space) -> Leaf:
    """A leaf for one space, or ValueError for a space kind no vector searcher understands."""
    if isinstance(space, Categorical):  # Nested is a Categorical of dicts
        lookup: dict[str, int] = {}
        for i, choice in enumerate(space.data):
            lookup.setdefault(config_key(choice), i)
        return Leaf(path, space, CATEGORICAL, len(space.data), lookup)
    if isinstance(space, Int):
        return Leaf(path, space, ORDINAL, (space.upper - space.lower) // space.step + 1)
    if isinstance(space, Real):
        if space.step is not None:
            return Leaf(path, space, ORDINAL, len(space.data))
        return Leaf(path, space, REAL)
    name = ".".join(str(p) for p in path)
    raise ValueError(f"arg {name!r} has an unsupported space {type(space).__name__}")


class FlatSpace:
    """The leaves of a :class:`Dict` space, in config order, plus the constants around them."""

    def __init__(self, space: Dict) -> None:
        self.leaves: list[Leaf] = []
        self._skeleton = self._walk(space, ())

    def _walk(self, value: Any, path: tuple[Any, ...]) -> Any:
        # Containers become the skeleton of a config; leaves leave a None slot to fill in.
        if isinstance(value, Dict):  # File args are Dicts too
            return {k: self._walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, List):
            return [self._walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, Space):
            self.leaves.append(make_leaf(path, value))
            return None
        return copy.deepcopy(value)  # a constant: every config carries it as is

    def __len__(self) -> int:
        return len(self.leaves)

    @property
    def size(self) -> float:
        """How many distinct configs there are (``inf`` with a continuous Real)."""
        if any(leaf.kind == REAL for leaf in self.leaves):
            return math.inf
        return math.prod(leaf.size for leaf in self.leaves)

    def decode(self, coords: Sequence[Any]) -> dict:
        """The config for one coordinate per leaf, with plain Python values."""
        config = copy.deepcopy(self._skeleton)
        for leaf, coord in zip(self.leaves, coords):
            target = config
            for key in leaf.path[:-1]:
                target = target[key]
            target[leaf.path[-1]] = leaf.value(coord)
        return config

    def encode(self, config: Any) -> list[Any] | None:
        """One coordinate per leaf for a config, or None when the config does not fit the space."""
        coords = []
        for leaf in self.leaves:
            value = config
            try:
                for key in leaf.path:
                    value = value[key]
            except (KeyError, IndexError, TypeError):
                return None
            coord = leaf.coord(value)
            if coord is None:
                return None
            coords.append(coord)
        return coords
