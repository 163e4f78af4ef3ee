"""The Ray queue that carries messages from jobs to the scheduler actor.

An async actor holding a FIFO: jobs ``put`` messages, the scheduler keeps one ``get_all`` call
outstanding, which returns every queued message as soon as there is at least one. One round trip
fetches a whole backlog (``ray.util.queue.Queue`` needs two: ``qsize`` then ``get_nowait_batch``),
and the scheduler waits on it with ``ray.wait`` together with its jobs, so nothing polls.
"""
from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any

import ray

# Message kinds: (kind, job_id, attempt, payload)
START, SCALARS, WAKE = "start", "scalars", "wake"


@ray.remote(num_cpus=0, max_restarts=0)
class MessageChannel:
    def __init__(self) -> None:
        self._items: collections.deque = collections.deque()
        self._ready = asyncio.Event()

    async def put(self, item: Any) -> None:
        self._items.append(item)
        self._ready.set()

    async def get_all(self) -> list[Any]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        out = list(self._items)
        self._items.clear()
        return out

    async def size(self) -> int:
        return len(self._items)


_handles: dict[str, Any] = {}  # channel name -> handle, per process


@dataclass(frozen=True)
class ChannelName:
    """Where a job sends its messages: a named :class:`MessageChannel`. Cheaper to pass to every
    job than the actor handle; a job looks the actor up only when it sends, once per process."""

    name: str
    namespace: str

    def handle(self) -> Any:
        handle = _handles.get(self.name)
        if handle is None:
            handle = _handles[self.name] = ray.get_actor(self.name, namespace=self.namespace)
        return handle
