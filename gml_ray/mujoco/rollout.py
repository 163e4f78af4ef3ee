"""Rollout actors: Ray actors that each own one gymnasium env, and the per-run pool of them.

A :class:`RolloutActor` creates its env once and evaluates one policy vector at a time; the outcome
has the shape :func:`gml_ray.engine.runners.run_function` returns (status, message, node, started,
ended, ``sent=0`` and the scalars in the outcome), so the scheduler treats an evaluation like any
short function trial. A :class:`RolloutPool` holds ``parallel_size`` of them for one run and kills
them when the run ends.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Sequence

import ray

from gml_ray.engine.pool import ActorPool
from gml_ray.mujoco.objective import DEFAULT_ROLLOUTS, Cancelled, Objective
from gml_ray.vocab import JobStatus

log = logging.getLogger("gml_ray.mujoco")


class RolloutWorker:
    """The actor's body (a plain class, so it can be tested without Ray)."""

    def __init__(self, func_type: str, rollouts: int = DEFAULT_ROLLOUTS,
                 reward_attribute: str = "default") -> None:
        self.objective = Objective(func_type, rollouts)
        self.reward_attribute = reward_attribute
        self._lock = threading.Lock()  # one evaluation at a time: the env is not thread-safe
        self._cancelled: dict[Any, str] = {}  # token -> reason
        self._current: Any = None  # the token of the evaluation running now
        self._node: str | None = None

    def node(self) -> str:
        if self._node is None:
            from gml_ray.engine.messages import node_name
            self._node = node_name()
        return self._node

    def cancel(self, token: Any, reason: str = "cancelled") -> None:
        """End the evaluation ``token`` (running or not yet started) as KILLED."""
        if self._current is not None and self._current != token:
            return  # that evaluation ended already; another one runs now
        if len(self._cancelled) > 1000:  # cancels that came after their evaluation ended
            self._cancelled.clear()
        self._cancelled[token] = reason

    def evaluate(self, x: Sequence[float], seed: int, token: Any = None,
                 time_limit: float | None = None) -> dict:
        """Evaluate ``x``; an outcome dict like ``run_function``'s (scalars included, sent=0)."""
        started = time.time()
        deadline = started + time_limit if time_limit else None
        status, message, result = JobStatus.FINISHED, "", None

        def should_stop() -> str | None:
            reason = self._cancelled.get(token)
            if reason is None and deadline is not None and time.time() >= deadline:
                return f"time_limits_per_job ({time_limit:g}s) reached"
            return reason

        with self._lock:
            self._current = token
            try:
                early = should_stop()
                if early:
                    raise Cancelled(early)
                result = self.objective.evaluate(x, seed, should_stop)
            except Cancelled as exc:
                status, message = JobStatus.KILLED, exc.reason
            except Exception as exc:  # noqa: BLE001 - a bad vector or a MuJoCo failure: this job is ERROR
                status, message = JobStatus.ERROR, f"{type(exc).__name__}: {exc}"
            finally:
                self._current = None
                self._cancelled.pop(token, None)
        ended = time.time()
        scalars: list[dict] = []
        if result is not None:  # always: the reward is the result itself (even with metrics: none)
            c = int(ended * 1000)
            scalars = [{"t": self.reward_attribute, "v": result["value"], "s": 0, "c": c},
                       {"t": "episodes", "v": len(result["returns"]), "s": 0, "c": c},
                       {"t": "steps", "v": result["steps"], "s": 0, "c": c}]
            scalars += [{"t": f"return_{i}", "v": r, "s": 0, "c": c}
                        for i, r in enumerate(result["returns"])]
        return {"status": status, "message": message, "exit_code": None, "node": self.node(),
                "started": started, "ended": ended, "sent": 0, "scalars": scalars,
                **({"value": result["value"], "steps": result["steps"]} if result else {})}


# Two threads: one evaluates, the other takes cancel() calls meanwhile. max_restarts=0: an actor
# that died is replaced by the pool, never restarted behind its back with a half-run job.
RolloutActor = ray.remote(max_concurrency=2, max_restarts=0, max_task_retries=0)(RolloutWorker)


class RolloutPool(ActorPool):
    """``size`` rollout actors for one run (their envs get built while the searcher warms up); a
    job takes a free one and gives it back when it ends."""

    def __init__(self, func_type: str, size: int, resources: dict[str, Any] | None = None,
                 rollouts: int = DEFAULT_ROLLOUTS, reward_attribute: str = "default") -> None:
        self.func_type = func_type
        super().__init__(RolloutActor, size, resources, (func_type, rollouts, reward_attribute))
