"""Search-space objects: Categorical, Real, Int, Nested, File, plus the Dict and List containers.

The API follows the one GML plugins were written against (``.data``, ``.step``, ``Dict.kwspaces``):
a searcher receives a :class:`Dict` whose values are spaces (or constants) and returns a config, a
plain nested ``dict`` with one concrete value per leaf.
"""
from __future__ import annotations

import itertools
import json
import math
import random
from abc import ABC, abstractmethod
from typing import Any, ItemsView, Iterator, KeysView


class Space(ABC):
    """Base of all search spaces. Leaves implement ``sample``; finite leaves also ``data``."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """A random value of this space (a config, for containers), drawn with ``rng``."""

    @property
    def is_finite(self) -> bool:
        return True

    def grid(self) -> list[Any]:
        """Every value this space can take, in order (finite spaces only)."""
        return list(self.data)  # type: ignore[attr-defined]


class Categorical(Space):
    """One of the given choices."""

    def __init__(self, *data: Any) -> None:
        if not data:
            raise ValueError("Categorical needs at least one choice")
        self.data = list(data)

    def sample(self, rng: random.Random) -> Any:
        return self.data[rng.randrange(len(self.data))]

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{tuple(self.data)!r}"


class Nested(Categorical):
    """A list of dicts; one dict is chosen as a whole and its keys become args of their own."""

    def __init__(self, *data: dict) -> None:
        super().__init__(*data)
        for d in self.data:
            if not isinstance(d, dict):
                raise ValueError(f"Nested choices must be mappings, got {d!r}")

    @property
    def keys(self) -> list[str]:
        """Every key any choice sets, in first-seen order."""
        seen: dict[str, None] = {}
        for d in self.data:
            seen.update(dict.fromkeys(d))
        return list(seen)


class Real(Space):
    """A float in [lower, upper]; ``log`` samples log-uniformly; ``step`` makes it a finite grid."""

    def __init__(self, lower: float, upper: float, default: float | None = None,
                 log: bool = False, step: float | None = None) -> None:
        if not lower < upper:
            raise ValueError(f"Real needs low < high, got [{lower}, {upper}]")
        if log and lower <= 0:
            raise ValueError(f"Real with log: true needs low > 0, got {lower}")
        if step is not None and step <= 0:
            raise ValueError(f"Real step must be > 0, got {step}")
        if step is not None and log:
            raise ValueError("Real takes either step or log: true, not both")
        self.lower, self.upper = float(lower), float(upper)
        self.default, self.log, self.step = default, bool(log), step

    @property
    def is_finite(self) -> bool:
        return self.step is not None

    @property
    def data(self) -> list[float]:
        """The grid low, low+step, ... <= high (only when ``step`` is set)."""
        if self.step is None:
            raise TypeError("a Real without step has no finite .data; give it a step")
        n = int(math.floor((self.upper - self.lower) / self.step + 1e-9))
        # 12 significant digits drop float noise (0.30000000000000004) but keep a fine `lower`.
        values = [float(f"{self.lower + i * self.step:.12g}") for i in range(n + 1)]
        return [min(max(v, self.lower), self.upper) for v in values]

    def nearest(self, x: float) -> float:
        """The value of this arg nearest ``x``: within the bounds, on the grid when ``step`` is set."""
        x = min(self.upper, max(self.lower, float(x)))
        if self.step is None:
            return x
        k = round((x - self.lower) / self.step)
        return float(f"{min(self.upper, self.lower + k * self.step):.12g}")

    def sample(self, rng: random.Random) -> float:
        if self.step is not None:
            values = self.data
            return values[rng.randrange(len(values))]
        if self.log:
            return math.exp(rng.uniform(math.log(self.lower), math.log(self.upper)))
        return rng.uniform(self.lower, self.upper)

    def __repr__(self) -> str:
        extra = f", step={self.step}" if self.step is not None else ""
        extra += ", log=True" if self.log else ""
        return f"Real({self.lower}, {self.upper}{extra})"


class Int(Space):
    """An integer in [lower, upper], both inclusive, every ``step``."""

    def __init__(self, lower: int, upper: int, default: int | None = None, step: int = 1) -> None:
        if not lower <= upper:
            raise ValueError(f"Int needs low <= high, got [{lower}, {upper}]")
        if step < 1:
            raise ValueError(f"Int step must be >= 1, got {step}")
        self.lower, self.upper, self.default, self.step = int(lower), int(upper), default, int(step)

    @property
    def data(self) -> list[int]:
        return list(range(self.lower, self.upper + 1, self.step))

    def nearest(self, x: float) -> int:
        """The value of this arg nearest ``x``: within the bounds, on its step."""
        x = min(self.upper, max(self.lower, float(x)))
        return min(self.upper, self.lower + round((x - self.lower) / self.step) * self.step)

    def sample(self, rng: random.Random) -> int:
        return rng.randrange(self.lower, self.upper + 1, self.step)

    def __repr__(self) -> str:
        step = f", step={self.step}" if self.step != 1 else ""
        return f"Int({self.lower}, {self.upper}{step})"


class Dict(Space):
    """An ordered mapping of names to spaces or constants; a config is a dict with the same keys."""

    def __init__(self, **kwargs: Any) -> None:
        self._items: dict[str, Any] = dict(kwargs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> KeysView[str]:  # noqa: D102 - mapping protocol
        return self._items.keys()

    def items(self) -> ItemsView[str, Space]:  # noqa: D102 - mapping protocol
        return self._items.items()

    @property
    def kwspaces(self) -> dict[str, Space]:
        """Each leaf space by its flat name (``outer.inner`` for args inside File/Dict args)."""
        out: dict[str, Space] = {}
        for key, value in self._items.items():
            if isinstance(value, (Dict, List)):
                for sub, space in value.kwspaces.items():
                    out[f"{key}.{sub}"] = space
            elif isinstance(value, Space):
                out[key] = value
        return out

    @property
    def is_finite(self) -> bool:
        return all(v.is_finite for v in self._items.values() if isinstance(v, Space))

    def sample(self, rng: random.Random) -> dict:
        return {k: sample(v, rng) for k, v in self._items.items()}

    def grid(self) -> list[dict]:
        keys = list(self._items)
        columns = [grid(self._items[k]) for k in keys]
        return [dict(zip(keys, combo)) for combo in itertools.product(*columns)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class File(Dict):
    """A config file whose keys are searched: ``file`` is the template file, children are its args."""

    def __init__(self, file: str, place_holder: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file, self.place_holder = file, place_holder


class List(Space):
    """A fixed-length list of spaces or constants; a config is a list with one value per item."""

    def __init__(self, *items: Any) -> None:
        self._items = list(items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __getitem__(self, index: int) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def kwspaces(self) -> dict[str, Space]:
        out: dict[str, Space] = {}
        for i, value in enumerate(self._items):
            if isinstance(value, (Dict, List)):
                out.update({f"{i}.{k}": s for k, s in value.kwspaces.items()})
            elif isinstance(value, Space):
                out[str(i)] = value
        return out

    @property
    def is_finite(self) -> bool:
        return all(v.is_finite for v in self._items if isinstance(v, Space))

    def sample(self, rng: random.Random) -> list:
        return [sample(v, rng) for v in self._items]

    def grid(self) -> list[list]:
        return [list(c) for c in itertools.product(*(grid(v) for v in self._items))]


def sample(value: Any, rng: random.Random) -> Any:
    """A random config from a space, or the value itself when it is a constant."""
    return value.sample(rng) if isinstance(value, Space) else value


def grid(value: Any) -> list[Any]:
    """Every config of a finite space (the Cartesian product over containers)."""
    if isinstance(value, Space):
        if not value.is_finite:
            raise TypeError(f"{value!r} is not finite: give Real a step, or use another searcher")
        return value.grid()
    return [value]


def grid_size(value: Any) -> int:
    """How many configs ``grid(value)`` would produce, without building them."""
    if isinstance(value, Dict):
        return math.prod(grid_size(v) for _, v in value.items())
    if isinstance(value, List):
        return math.prod(grid_size(v) for v in value)
    if isinstance(value, Space):
        return len(value.grid()) if value.is_finite else math.inf  # type: ignore[return-value]
    return 1


def config_key(config: Any) -> str:
    """A canonical string for a config, equal for equal configs whatever the key order."""
    return json.dumps(config, sort_keys=True, default=str)
