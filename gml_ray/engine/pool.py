"""A run's pool of reusable Ray actors, one per parallel slot.

Jobs that run on an actor of the pool (function trials, MuJoCo evaluations) skip Ray's per-task
dispatch: a call on a waiting actor costs about half a task's submission here (0.84-1.09 against
1.70-2.03 ms a trivial job, 2 slots, measured in one sitting). A job takes a free actor with
:meth:`ActorPool.acquire` and gives it back with :meth:`ActorPool.release`; an actor that died is
replaced. The scheduler calls :meth:`ActorPool.shutdown` when its run ends.
"""
from __future__ import annotations

from typing import Any, Sequence

import ray


class ActorPool:
    """``size`` actors of ``actor_cls`` (a Ray actor class) built with ``args``, each with
    ``resources`` (``task.resources``; default 1 CPU). They are created at once, so that their
    processes start while the searcher warms up."""

    def __init__(self, actor_cls: Any, size: int, resources: dict[str, Any] | None = None,
                 args: Sequence[Any] = ()) -> None:
        from gml_ray.engine.job import DEFAULT_RESOURCES, ray_resources

        self.size = size
        self._cls, self._args = actor_cls, tuple(args)
        self._opts = ray_resources(dict(resources or DEFAULT_RESOURCES))
        self._actors: list[Any] = [self._new() for _ in range(size)]
        self._free: list[int] = list(range(size))
        self._closed = False

    def _new(self) -> Any:
        return self._cls.options(**self._opts).remote(*self._args)

    @property
    def actors(self) -> list[Any]:
        return list(self._actors)

    def free_count(self) -> int:
        return len(self._free)

    def acquire(self) -> tuple[int, Any]:
        """A free actor as (slot, handle); RuntimeError when all are busy or the pool is shut."""
        if self._closed:
            raise RuntimeError("the actor pool was shut down")
        if not self._free:
            raise RuntimeError(f"all {self.size} actors of the pool are busy")
        slot = self._free.pop(0)
        return slot, self._actors[slot]

    def release(self, slot: int, dead: bool = False) -> None:
        """Give back ``slot``; ``dead``: its actor failed (or was ended), so a fresh one replaces it."""
        if self._closed or slot in self._free:
            return
        if dead:
            try:
                ray.kill(self._actors[slot])
            except Exception:  # noqa: BLE001 - already gone
                pass
            self._actors[slot] = self._new()
        self._free.append(slot)

    def shutdown(self) -> None:
        """Kill every actor of the pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._free = []
