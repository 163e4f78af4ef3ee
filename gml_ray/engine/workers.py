"""The reusable processes of a run's actor pool: :class:`TrialWorker` runs function trials, one
at a time, and ``cancel`` ends the one running.

A call on a waiting actor costs about half a Ray task's dispatch and no worker lease from the
raylet (:mod:`.pool`), which is what many short jobs, or many jobs at once, pay per job.
"""
from __future__ import annotations

import ctypes
import pickle
import threading
from typing import Any, Callable

import ray

from gml_ray.engine.runners import run_function
from gml_ray.engine.spec import JobSpec, Outcome
from gml_ray.engine.timers import alarm
from gml_ray.vocab import JobStatus


def _unpack(packed: JobSpec | bytes, channel: Any) -> tuple[JobSpec, Any]:
    """A call's ``(spec, channel)``: given apart, or as ``pickle.dumps((spec, channel))`` (one
    bytes argument, which Ray passes as it is)."""
    if isinstance(packed, bytes):
        return pickle.loads(packed)
    return packed, channel


class PoolWorker:
    """What a pool's workers share: which job runs now (``(job_id, attempt)``), and the cancels that
    came before their job started (kept until it does)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple | None = None
        self._reason: str | None = None  # why the current job was cancelled (None: it was not)
        self._early: dict[tuple, str] = {}

    def _begin(self, token: tuple) -> None:
        """Called with the lock held when job ``token`` starts."""
        self._current = token
        self._reason = self._early.pop(token, None)

    def _cancel_later(self, token: tuple, reason: str) -> None:
        """Called with the lock held for a cancel of a job that is not running (yet)."""
        if len(self._early) > 1000:  # cancels that came after their job ended
            self._early.clear()
        self._early[token] = reason


class TrialWorker(PoolWorker):
    """Runs function trials with :func:`~.runners.run_function` (the body of :data:`TrialActor`).

    A running call on a Ray actor cannot be cancelled by Ray (``ray.cancel`` only sets a flag), so
    the interrupt is a KeyboardInterrupt raised in the trial's thread, armed only while the user's
    function runs. A trial still running ``KILL_GRACE_S`` after it (stuck in C code, or one that
    swallowed the interrupt) is ended by the scheduler killing the actor (:meth:`Job.overdue`);
    the pool replaces it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread = 0  # the thread the trial runs on
        self._armed = False  # the user's function is running: an interrupt may be raised in it
        self._fired = False

    def run(self, packed: JobSpec | bytes, channel: Any = None) -> Outcome:
        """Run a trial; returns its outcome."""
        spec, channel = _unpack(packed, channel)
        token = (spec.job_id, spec.attempt)
        with self._lock:
            self._begin(token)
            self._thread = threading.get_ident()
            self._armed = self._fired = False
        limit = None
        if spec.time_limit:
            reason = f"time_limits_per_job ({spec.time_limit:g}s) reached"
            limit = alarm.schedule(spec.time_limit, lambda: self.cancel(token, reason))
        try:
            outcome = run_function(spec, channel, self._call)
        finally:
            if limit is not None:
                alarm.cancel(limit)
            with self._lock:
                self._current = None
        # A trial stopped by a cancel (KeyboardInterrupt) is KILLED with its reason, also when
        # it answered the interrupt with sys.exit().
        if self._reason and (outcome["status"] == JobStatus.KILLED or outcome.get("exit_code") is not None):
            outcome["status"], outcome["message"] = JobStatus.KILLED, self._reason
        return outcome

    def _call(self, fn: Callable[[dict], Any], values: dict) -> Any:
        with self._lock:
            if self._reason is not None:  # cancelled before the function started
                raise KeyboardInterrupt
            self._armed = True
        try:
            return fn(values)
        finally:
            with self._lock:
                self._armed = False
                if self._fired:  # an interrupt that came as the function returned: drop it
                    _raise_in_thread(self._thread, None)

    def cancel(self, token: tuple, reason: str = "cancelled") -> None:
        """End trial ``token`` (running, or not started yet) as KILLED with ``reason``."""
        token = tuple(token)
        with self._lock:
            if self._current != token:
                self._cancel_later(token, reason)
                return
            if self._reason is None:
                self._reason = reason
            if self._armed and not self._fired:
                self._fired = True
                _raise_in_thread(self._thread, KeyboardInterrupt)


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Make ``exc`` raise in thread ``thread_id`` at its next Python instruction (None: take back
    one that has not been raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc) if exc is not None else None)


# max_concurrency=3: a job, a cancel() meanwhile, and room for a second one. max_restarts=0: a
# dead actor is replaced by the pool, never restarted behind its back.
TrialActor = ray.remote(max_concurrency=3, max_restarts=0, max_task_retries=0)(TrialWorker)
