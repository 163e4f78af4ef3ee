"""Jobs: one config's run on Ray, seen from the scheduler (manual 3.2: ``start``, ``wait``, ``kill``,
``status``).

A :class:`CommandJob` runs the rendered template (:func:`~.runners.run_command`) and a
:class:`FunctionJob` calls ``module:callable`` (:func:`~.runners.run_function`), as a Ray task or
on an actor of the run's pool. ``status`` is a plain value: the scheduler sets it when it reads
the job's outcome (:meth:`Job.resolve`), or a caller does through :meth:`Job.wait`.
"""
from __future__ import annotations

import os
import pickle
import re
import time
from typing import Any

import ray

from gml_ray.engine.channel import ChannelName
from gml_ray.engine.checkpoints import Restore
from gml_ray.engine.runners import run_command_remote, run_function_remote
from gml_ray.engine.spec import KILL_GRACE_S, JobSpec
from gml_ray.vocab import JobStatus

# a job's (and a pool actor's) resources when task.resources names none
DEFAULT_RESOURCES: dict[str, float] = {"num_cpus": 1}


def ray_resources(resources: dict[str, float]) -> dict[str, Any]:
    """``task.resources`` as Ray ``.options()`` kwargs (custom names go in ``resources``)."""
    opts: dict[str, Any] = {}
    custom = {}
    for key, value in resources.items():
        if key in ("num_cpus", "num_gpus", "memory"):
            opts[key] = value
        else:
            custom[key] = value
    if custom:
        opts["resources"] = custom
    return opts


def spec_kwargs(kwargs: dict) -> dict:
    """Pop the JobSpec fields out of a Job constructor's kwargs."""
    keys = ("job_id", "attempt", "time_limit", "generate_log", "collect_metrics", "env")
    return {k: kwargs.pop(k) for k in keys if k in kwargs}


_optioned: dict[tuple, Any] = {}


def _with_options(remote: Any, opts: dict[str, Any]) -> Any:
    """``remote.options(**opts)``, made once per set of options (it builds a class each time).

    Only plain options (numbers, strings, dicts of them) are cached: an object's repr may not say
    what it holds."""
    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return v is None or isinstance(v, (bool, int, float, str))

    if not plain(opts):
        return remote.options(**opts)
    key = (id(remote), repr(sorted(opts.items())))
    if key not in _optioned:
        if len(_optioned) > 64:
            _optioned.clear()
        _optioned[key] = remote.options(**opts)
    return _optioned[key]


LOST_ERRORS = tuple(getattr(ray.exceptions, name) for name in (
    "NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError",
    "OwnerDiedError", "ActorDiedError") if hasattr(ray.exceptions, name))

REASON_MAX = 300  # a stored reason longer than this is cut at a word, with "..."
_SENTENCE = re.compile(r"^(.+?[.!?])(?=\s+[A-Z(`\[]|$)")


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (whitespace folded), whole; a first sentence over
    :data:`REASON_MAX` characters is cut at a word and ends with "..."."""
    text = " ".join(text.split())
    found = _SENTENCE.match(text)
    sentence = found.group(1) if found else text
    if len(sentence) > REASON_MAX:
        sentence = sentence[:REASON_MAX].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return sentence


def node_death(exc: BaseException) -> tuple[str, str] | None:
    """``(node id, "<ip> <id prefix>")`` when ``exc`` says the node running the job died: a
    NodeDiedError, or a pool actor's ActorDiedError "because its node has died"; else None (a
    worker that crashed on a live node is no node loss)."""
    from gml_ray.engine.runtime import lost_node

    node_died = getattr(ray.exceptions, "NodeDiedError", None)
    text = str(exc)
    if (node_died is not None and isinstance(exc, node_died)) or "because its node has died" in text:
        return lost_node(text)
    return None


def error_reason(exc: BaseException) -> str:
    """A whole, short reason for a job that Ray could not run to its end: what an ERROR job's
    row keeps (Ray's own texts run to 300-800 characters of hints and ids).

    ``the node running it died (NodeDiedError; node 192.0.2.2 2a686e5d)``, the first sentence of
    other Ray errors (``WorkerCrashedError: The worker died unexpectedly while executing this
    task.``), and for an exception raised in the job's Ray task its own type and message.
    """
    name = type(exc).__name__
    node_died = getattr(ray.exceptions, "NodeDiedError", None)
    node = node_death(exc)
    if node is not None or (node_died is not None and isinstance(exc, node_died)):
        return f"the node running it died ({name}" + (f"; node {node[1]})" if node else ")")
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {first_sentence(str(cause))}".rstrip(": ")
    return f"{name}: {first_sentence(str(exc))}".rstrip(": ")


EARLIER = " (attempt "  # a job run again: "<node> (attempt 1: <its node>)" in the node column


def earlier_nodes(stored: str | None, attempt: int) -> str:
    """The earlier attempts' nodes of a job about to run attempt ``attempt + 1``, from the node
    column of its row (attempt ``attempt``'s node and what it kept of the ones before):
    ``attempt 2: 192.0.2.3 5e6f7a8b; attempt 1: 192.0.2.2 2a686e5d``."""
    if not stored:
        return ""
    node, sep, before = (" " + stored).partition(EARLIER)
    before = ("attempt " + before[:-1]) if sep and before.endswith(")") else ""
    node = node.strip()
    parts = ([f"attempt {attempt}: {node}"] if node else []) + ([before] if before else [])
    return "; ".join(parts)


class Job:
    """One config's run on Ray. ``start()`` submits it, ``wait()`` blocks for its outcome,
    ``kill()`` ends it (its whole process group), ``status`` is PENDING → RUNNING → an end status.

    With a ``pool`` (:class:`~gml_ray.engine.pool.ActorPool`) the job runs on a free actor of
    it, which goes back to the pool when the outcome is read; otherwise it is a Ray task.
    """

    _remote: Any = None

    def __init__(self, spec: JobSpec, arg_dict: dict | None = None, config: Any = None,
                 resources: dict[str, float] | None = None, channel: Any = None,
                 pool: Any = None) -> None:
        self.spec = spec
        self.pool = pool
        self._slot: int | None = None
        self._actor: Any = None
        self.run_started: float | None = None  # when it began to run (its START message says)
        self.restore: Restore | None = None  # the checkpoint this attempt starts from
        self.returned: list[dict] = []  # reports its outcome carried (taken in when it finishes)
        self._kill_asked_at: float | None = None  # when kill() asked the pool actor to stop it
        self._actor_ended = False
        self.name = spec.name
        self.arg_dict = dict(arg_dict or {})
        self.config = config
        self.resources = dict(resources or DEFAULT_RESOURCES)
        self.channel = channel
        self.ref: Any = None
        self.outcome: dict | None = None
        self._status = JobStatus.PENDING
        self.kill_status: str | None = None  # the end status a kill() asked for
        self.kill_message = ""
        self.reward: float | None = None  # best reward_attribute value so far
        self.rendered: Any = None  # the RenderedJob it came from (its File args' copies)
        self.submitted: float | None = None  # when start() handed it to Ray
        self.earlier = ""  # the earlier attempts' nodes (:func:`earlier_nodes`), for a job run again
        self.exited: int | None = None  # the code of a function trial's os._exit(code), if it said so

    def follow(self, rows: list[dict]) -> None:
        """This job runs again: ``rows`` (its row, with node and attempt) say where it ran."""
        if rows:
            self.earlier = earlier_nodes(rows[0].get("node"), int(rows[0].get("attempt") or 1))

    def node_text(self, node: str | None) -> str | None:
        """What the node column keeps: the node, then the earlier attempts' nodes if any."""
        if not self.earlier:
            return node
        return f"{node or ''}{EARLIER}{self.earlier[len('attempt '):]})".lstrip()

    @property
    def command(self) -> str | None:
        return self.spec.command

    @property
    def status(self) -> str:
        """PENDING, RUNNING, or the end status once the outcome was read (reading it changes
        nothing: the scheduler, or :meth:`wait`, reads the outcome)."""
        return self._status

    @property
    def _token(self) -> tuple[int, int]:
        """Names this run of the job to its actor (for ``cancel``)."""
        return (self.spec.job_id, self.spec.attempt)

    @property
    def starts_running(self) -> bool:
        """Whether it runs as soon as it is started (an actor of the pool is waiting for it)."""
        return self.pool is not None

    def mark_running(self) -> bool:
        """PENDING → RUNNING; False if the job was past PENDING already (or never started)."""
        if self._status == JobStatus.PENDING and self.outcome is None and self.ref is not None:
            self._status = JobStatus.RUNNING
            return True
        return False

    def start(self, **kwargs: Any) -> "Job":
        if self.ref is not None:
            return self
        self.submitted = time.time()
        if self.pool is not None:
            self._slot, self._actor = self.pool.acquire()
            self.ref = self._submit(self._actor)
            return self
        opts = ray_resources(self.resources)
        opts.update(kwargs)
        remote = _with_options(self._remote, opts)
        if self.channel is None or isinstance(self.channel, ChannelName):
            self.ref = remote.remote(pickle.dumps((self.spec, self.channel)))
        else:  # an actor handle needs Ray's own pickling
            self.ref = remote.remote(self.spec, self.channel)
        return self

    def wait(self, timeout: float | None = None) -> dict | None:
        """The outcome dict once the job ended (None if ``timeout`` passed first)."""
        if self.outcome is not None:
            return self.outcome
        ready, _ = ray.wait([self.ref], timeout=timeout)
        if not ready:
            return None
        return self.resolve()

    def _submit(self, actor: Any) -> Any:
        """Run this job on ``actor`` (of the pool: a :mod:`.workers` actor); returns the call's ref."""
        if self.channel is None or isinstance(self.channel, ChannelName):
            return actor.run.remote(pickle.dumps((self.spec, self.channel)))
        return actor.run.remote(self.spec, self.channel)  # an actor handle needs Ray's pickling

    def resolve(self) -> dict:
        """Read the finished Ray task's outcome (its error becomes an ERROR outcome)."""
        try:
            outcome = ray.get(self.ref)
        except ray.exceptions.TaskCancelledError:
            outcome = {"status": JobStatus.KILLED, "message": "cancelled before it started", "sent": 0}
        except ray.exceptions.RayError as exc:
            outcome = {"status": JobStatus.ERROR, "message": error_reason(exc), "sent": None,
                       # the job's node or worker died under it: worth running again elsewhere
                       "lost": isinstance(exc, LOST_ERRORS), "lost_node": node_death(exc)}
        # A pool actor that died after its job was asked to stop died of that stop.
        ended_by_kill = self._actor is not None and outcome.get("lost")
        if self.kill_status is not None and (outcome["status"] == JobStatus.KILLED or ended_by_kill):
            outcome["status"] = self.kill_status
            outcome["message"] = self.kill_message or outcome.get("message", "")
            outcome["lost"] = False
        if outcome.get("node") and self.earlier:
            outcome["node"] = self.node_text(outcome["node"])
        self.outcome = outcome
        self._status = outcome["status"]
        if self.pool is not None and self._slot is not None:
            # No outcome from the actor (it died, or was ended): a fresh one replaces it.
            self.pool.release(self._slot, dead=outcome.get("sent", 0) is None)
            self._slot = None
        return outcome

    def kill(self, status: str = JobStatus.KILLED, message: str = "") -> None:
        """End the job; its status becomes ``status`` (KILLED, EARLY_STOPPED or ERROR)."""
        if self.ref is None or self.outcome is not None:
            return
        if self.kill_status is None:
            self.kill_status, self.kill_message = status, message
        if self._actor is not None:
            if self._kill_asked_at is None:
                self._kill_asked_at = time.time()
            self._actor.cancel.remote(self._token, message or "cancelled")
        else:
            ray.cancel(self.ref, force=False)

    def overdue(self, now: float) -> str | None:
        """Why this job, on a pool actor, should be ended with its actor: it outlived a kill() or
        its time limit (which the actor enforces, from the START it sent) by ``KILL_GRACE_S``.
        None if it should not."""
        if self._actor is None or self.outcome is not None or self._actor_ended:
            return None
        grace = KILL_GRACE_S
        if self._kill_asked_at is not None and now - self._kill_asked_at > grace:
            return self.kill_message or "cancelled"
        limit = self.spec.time_limit
        if limit and self.run_started is not None and now - self.run_started > limit + grace:
            return f"time_limits_per_job ({limit:g}s) reached"
        return None

    def end_actor(self, reason: str) -> None:
        """Kill the job's pool actor; the job ends KILLED with ``reason`` (unless a kill() gave
        its status first). The pool replaces the actor."""
        self._actor_ended = True
        if self.kill_status is None:
            self.kill_status, self.kill_message = JobStatus.KILLED, reason
        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:  # noqa: BLE001 - gone already
            pass


class CommandJob(Job):
    """Runs a shell command (the rendered template) in the job directory's process group, as a
    Ray task."""

    _remote = run_command_remote

    def __init__(self, command: str, name: str, arg_dict: dict | None = None,
                 pavi_compare_id: Any = None, symlink_paths: Any = None, *,
                 job_dir: str | None = None, cwd: str | None = None, **kwargs: Any) -> None:
        spec = JobSpec(name=name, command=command, cwd=cwd or os.getcwd(),
                       job_dir=job_dir or os.path.join(os.getcwd(), name), **spec_kwargs(kwargs))
        super().__init__(spec, arg_dict, **kwargs)


class FunctionJob(Job):
    """Calls ``module:callable`` with the config inside a Ray worker (a function trial): on an
    actor of ``pool`` (a pool of :data:`TrialActor`) when given one, else as a Ray task."""

    _remote = run_function_remote

    def __init__(self, function: str, name: str, values: dict, arg_dict: dict | None = None, *,
                 job_dir: str | None = None, cwd: str | None = None, **kwargs: Any) -> None:
        spec = JobSpec(name=name, function=function, values=dict(values), cwd=cwd or os.getcwd(),
                       job_dir=job_dir or os.path.join(os.getcwd(), name), **spec_kwargs(kwargs))
        super().__init__(spec, arg_dict, **kwargs)
