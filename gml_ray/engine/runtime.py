"""How gml-ray starts or joins Ray, with this stack's traps handled (see the README)."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from typing import Any, Callable, ContextManager, Iterable

from gml_ray.errors import EnvironmentFault, UserError

CONNECT_TIMEOUT_S = 10.0


def _probe(address: str) -> None:
    """Fail fast on a host:port nobody listens on (``ray.init`` would wait for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


def _wanted(resources: dict[str, float]) -> dict[str, float]:
    """``task.resources`` in Ray's resource names, without zeros."""
    return {_RAY_NAMES.get(k, k): v for k, v in resources.items() if v}


def _alive_nodes() -> list[dict[str, float]]:
    import ray

    return [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]


def _fits(node: dict[str, float], wanted: dict[str, float]) -> int:
    """How many holders of ``wanted`` fit on ``node`` at once."""
    return min(int(node.get(k, 0) / v + 1e-9) for k, v in wanted.items())


def _offer(nodes: list[dict[str, float]]) -> str:
    return "; ".join(", ".join(f"{k} {v:g}" for k, v in sorted(node.items())
                               if not k.startswith("node:") and k != "object_store_memory")
                     for node in nodes) or "no alive node"


def _ask(resources: dict[str, float]) -> str:
    """``task.resources`` as the messages show it: ``{num_cpus: 1, num_gpus: 0.5}``."""
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in resources.items()) + "}"


def _skip_check() -> bool:
    return os.environ.get("GML_SKIP_RESOURCE_CHECK") == "1"


def check_resources(resources: dict[str, float]) -> None:
    """Fail at once (UserError) when no alive node of the cluster could ever run one job.

    Ray would keep such a job PENDING forever. Set GML_SKIP_RESOURCE_CHECK=1 on an autoscaling
    cluster whose node types are not up yet.
    """
    if _skip_check():
        return
    wanted = _wanted(resources)
    nodes = _alive_nodes()
    if not wanted or any(_fits(node, wanted) >= 1 for node in nodes):
        return
    hint = ""
    if wanted.get("GPU") and not any(node.get("GPU", 0) >= wanted["GPU"] for node in nodes):
        hint = ("; without such GPUs set task.resources: {num_gpus: 0}, or declare GPUs for a "
                "local Ray with --num-gpus N")
    raise UserError(f"task.resources {_ask(resources)}: no node of the Ray cluster can run a job "
                    f"(nodes offer: {_offer(nodes)}){hint}")


def pool_size_note(resources: dict[str, float], parallel_size: int) -> tuple[int, str | None]:
    """How many actors holding ``resources`` each the cluster's alive nodes hold at once, capped
    at ``parallel_size``, and a one-line note when that is fewer.

    A pool actor holds its resources for the whole run, so an actor beyond what the nodes hold
    would never start and the jobs handed to it would wait forever. Not checked (the size comes
    back as asked) with GML_SKIP_RESOURCE_CHECK=1, where nodes may still be on their way.
    """
    wanted = _wanted(resources)
    if _skip_check() or not wanted:
        return parallel_size, None
    nodes = _alive_nodes()
    fit = sum(_fits(node, wanted) for node in nodes)
    if fit >= parallel_size or fit < 1:  # none at all is check_resources' error
        return parallel_size, None
    return fit, (f"parallel_size {parallel_size}: the Ray cluster holds {fit} actor"
                 f"{'s' if fit > 1 else ''} of {_ask(resources)} at once (nodes offer: {_offer(nodes)}); "
                 f"running {fit} at a time (more with --num-cpus/--num-gpus on a local Ray, or "
                 f"more nodes)")


# ---- nodes that leave during a run ----------------------------------------------------------------

# How long jobs wait, once no alive node can run one (its node left), for a node to join (an
# autoscaler's, a restarted one) before they and the task end ERROR. GML_UNSCHEDULABLE_GRACE_S
# overrides it (read when a run starts; `run --address` passes it on to the cluster's workers).
UNSCHEDULABLE_GRACE_S = 60.0
NODE_CHECK_S = 5.0  # while jobs wait to start, the nodes are looked at (ray.nodes()) at most this often
STALL_S = 5.0  # a job submitted this long ago that has not started is waiting for a node
FORWARDED_ENV = ("GML_UNSCHEDULABLE_GRACE_S", "GML_SKIP_RESOURCE_CHECK")

log = logging.getLogger("gml_ray.scheduler")

# "node ID: <hex>" (NodeDiedError), "Node Id: <hex>" (ActorDiedError's context), "node_id=<hex>"
_NODE_ID = re.compile(r"node[ _]?id[:=]?\s*([0-9a-f]{56})", re.IGNORECASE)
_NODE_IP = re.compile(r"\b(?:node )?ip(?: address)?[:=]?\s*([0-9a-f.:]*[0-9a-f])[,.]?(?:\s|$)", re.IGNORECASE)


def unschedulable_grace_s() -> float:
    """:data:`UNSCHEDULABLE_GRACE_S`, or GML_UNSCHEDULABLE_GRACE_S when set."""
    text = os.environ.get("GML_UNSCHEDULABLE_GRACE_S")
    try:
        return max(0.0, float(text)) if text else UNSCHEDULABLE_GRACE_S
    except ValueError:
        log.warning("GML_UNSCHEDULABLE_GRACE_S=%r is not a number: using %g s", text, UNSCHEDULABLE_GRACE_S)
        return UNSCHEDULABLE_GRACE_S


def lost_node(text: str) -> tuple[str, str] | None:
    """``(node id, "<ip> <id prefix>")`` of the node a Ray error says died, None if it names none.
    The name is the one the node column shows (:func:`~gml_ray.engine.messages.node_name`)."""
    found = _NODE_ID.search(text)
    if found is None:
        return None
    ip = _NODE_IP.search(text)
    node_id = found.group(1).lower()
    return node_id, f"{ip.group(1)} {node_id[:8]}" if ip else node_id[:8]


def _number(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _node_label(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} {str(node.get('NodeID', ''))[:8]}"


class NodeWatch:
    """Notices, during a run, that no alive node can run a job any more (the only node(s)
    offering ``task.resources`` left) and ends the wait after a grace period.

    Cheap: ``ray.nodes()`` (about 1 ms on a small cluster) is called once when the run starts,
    at once when a job fails with a node error, and at most every :data:`NODE_CHECK_S` while a
    job submitted :data:`STALL_S` ago has not started (or while the grace runs); never in the
    rounds of a run whose jobs start. A node a job's NodeDiedError names counts as gone at once
    (the GCS marks it dead only 10-30 s later). Off with GML_SKIP_RESOURCE_CHECK=1, like the
    check at the start.

    The loop calls :meth:`job_lost` for a job that ended with a node error and :meth:`tick`
    every round; ``waiting`` holds new jobs back, ``notice`` is the warning the run shows once,
    and :meth:`tick` returns the line that ends the run once the grace is over. ``unlocked``
    (the store's): ``ray.nodes()``, an RPC to the GCS, runs without the store's write lock.
    """

    def __init__(self, resources: dict[str, float], grace_s: float | None = None,
                 unlocked: Callable[[], ContextManager[Any]] | None = None) -> None:
        self._unlocked = unlocked or contextlib.nullcontext
        self.resources = {k: v for k, v in dict(resources).items() if v}
        self.wanted = _wanted(self.resources)
        self.enabled = bool(self.wanted) and not _skip_check()
        self.grace_s = unschedulable_grace_s() if grace_s is None else grace_s
        self.known: dict[str, str] = {}  # node id -> label, alive nodes that can run a job
        self.left: dict[str, str] = {}  # such nodes that left (or a job's node error named)
        self.dead: set[str] = set()  # ids a node error named: gone, whatever ray.nodes() says
        self.since: float | None = None  # when no alive node could run a job was first seen
        self.notice: str | None = None  # the warning while jobs wait
        self.ended: str | None = None  # the line the run ended with
        self.checks, self.check_s = 0, 0.0
        self._next = 0.0  # the first tick looks (it learns which nodes can run jobs)
        self._urgent = False

    @property
    def waiting(self) -> bool:
        """No alive node can run a job: none should be started."""
        return self.since is not None and self.ended is None

    def job_lost(self, outcome: dict[str, Any]) -> None:
        """A job ended with a node or worker error (``outcome["lost_node"]``: the node's
        ``(id, label)`` when the error named it): look at the nodes in the next tick."""
        if not self.enabled:
            return
        node = outcome.get("lost_node")
        if node:
            self.dead.add(node[0])
            self.left.setdefault(node[0], self.known.get(node[0], node[1]))
        self._urgent = True

    def tick(self, now: float, jobs: Iterable[Any]) -> str | None:
        """Called every round with the jobs not ended; the line to end the run with (the jobs
        ERROR with it, the task too) once no node could run them for the grace period."""
        if not self.enabled or self.ended is not None or (now < self._next and not self._urgent):
            return None
        if not (self._urgent or self.since is not None or not self.checks
                or any(_stalled(job, now) for job in jobs)):
            self._next = now + NODE_CHECK_S
            return None
        self._urgent = False
        return self._check(now)

    def _check(self, now: float) -> str | None:
        import ray

        t0 = time.perf_counter()
        with self._unlocked():  # a slow GCS must not hold the store for other writers
            answer = ray.nodes()
        nodes = [n for n in answer if n.get("Alive") and n.get("NodeID") not in self.dead]
        self.checks += 1
        self.check_s += time.perf_counter() - t0
        fit = {n["NodeID"]: _node_label(n) for n in nodes if _fits(n.get("Resources") or {}, self.wanted) >= 1}
        if fit:
            if self.since is not None:
                log.warning("a node that can run jobs joined (%s): jobs go on", ", ".join(fit.values()))
            self.known, self.since, self.notice, self.left = fit, None, None, {}
            self._next = now + NODE_CHECK_S
            return None
        for node_id, label in self.known.items():
            self.left.setdefault(node_id, label)
        self.known = {}
        if self.since is None:
            self.since = now
            self.notice = (f"no alive node offers {self.missing(nodes)}{self._left_text()}: jobs wait "
                           f"{self.grace_s:g} s for one to join")
            log.warning("%s (nodes offer: %s)", self.notice,
                        _offer([n.get("Resources") or {} for n in nodes]))
        if now - self.since >= self.grace_s:
            what = self._left_text()[2:-1]
            self.ended = (f"no alive node offers {self.missing(nodes)} ("
                          + (f"{what}; " if what else "")
                          + f"none joined within {self.grace_s:g} s): the task's jobs cannot run")
            log.error(self.ended)
            return self.ended
        self._next = min(now + NODE_CHECK_S, self.since + self.grace_s)
        return None

    def missing(self, nodes: list[dict[str, Any]]) -> str:
        """What no alive node offers, in ``task.resources``' own names: ``{'only_here': 1}``
        (all of them, "on one node", when each is offered but no node has them together)."""
        res = [n.get("Resources") or {} for n in nodes]
        gone = {k: _number(v) for k, v in self.resources.items()
                if not any(r.get(_RAY_NAMES.get(k, k), 0) + 1e-9 >= v for r in res)}
        if gone:
            return repr(gone)
        return repr({k: _number(v) for k, v in self.resources.items()}) + " on one node"

    def _left_text(self) -> str:
        if not self.left:
            return ""
        labels = list(dict.fromkeys(self.left.values()))
        return f" (the node{'s' if len(labels) > 1 else ''} {', '.join(labels)} left)"

    def stats(self) -> dict[str, float]:
        """How often the nodes were looked at, and the time it took (benchmarks, tests)."""
        return {"node_checks": self.checks, "node_check_s": self.check_s}


def _stalled(job: Any, now: float) -> bool:
    """A job that was submitted :data:`STALL_S` ago and has not started (no START came)."""
    submitted = getattr(job, "submitted", None)
    return (getattr(job, "outcome", None) is None and getattr(job, "run_started", None) is None
            and submitted is not None and now - submitted >= STALL_S)


class NoNodeLeft(EnvironmentFault):
    """The run ended because no alive node could run its jobs for the grace period (one line)."""


# ---- Ray's own messages on the driver -------------------------------------------------------------

_ray_log = logging.getLogger("gml_ray.ray_messages")
_ray_log.propagate = False  # never the terminal (Python's last-resort handler): only this file


def quiet_ray_messages() -> None:
    """Keep what the GCS publishes to drivers out of the run's terminal.

    A driver prints every error message the cluster publishes (a raylet's death, with its last
    20 log lines: 7-11 KB at each node loss; "node ... marked dead") from a thread of its own
    (``ray._private.worker.listen_error_messages``), ``log_to_driver=False`` or not. They go to
    ``gml_ray_driver.log`` in Ray's log dir on the driver's node instead; the run says in one
    warning what the loss means for its jobs (:class:`NodeWatch`). Idempotent.
    """
    try:
        import ray._private.worker as worker
    except ImportError:
        return
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_gml_quiet", False):
        return

    def to_log(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":  # not the error listener's: as Ray would
            original(data, ignore_prefix)
            return
        if not _ray_log.handlers:
            try:
                logs = worker._global_node.get_logs_dir_path()
                handler: logging.Handler = logging.FileHandler(
                    os.path.join(logs, "gml_ray_driver.log"), delay=True)
                handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            except Exception:  # noqa: BLE001 - no node, no log dir: drop them
                handler = logging.NullHandler()
            _ray_log.addHandler(handler)
        for line in data.get("lines") or ():
            _ray_log.warning("%s", line)

    to_log._gml_quiet = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_log


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``), or start a local Ray; True if this call started Ray.

    ``num_cpus``/``num_gpus`` size a local Ray (default: what the machine has); a cluster's nodes
    declare their own."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address in (None, "", "local"):
        # An embedded instance needs no token; without this Ray writes ~/.ray/auth_token and warns.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        _watch_driver()  # before Ray starts: a driver killed while it starts leaves nothing either
        try:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                     include_dashboard=False, **kwargs)
        except Exception as exc:  # Ray raises a bare Exception when its node is slow to come up
            if "timed out during startup" not in str(exc):
                raise
            raise EnvironmentFault("the local Ray did not start: its node did not register within "
                                   "Ray's 30 s (the machine is overloaded?); run again when it is "
                                   "less busy, or join a running Ray with --address") from None
        quiet_ray_messages()
        return True
    if address.startswith(("http://", "https://")):
        raise UserError(f"--address {address} is the dashboard's address; give the GCS address "
                        f"(host:6379) or 'auto'")
    if address != "auto":
        _probe(address)
    forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    if forwarded and "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # not under `ray job submit`
        # The scheduler actor runs in a worker of the cluster's raylet, whose environment is the
        # node's, not this driver's: these settings of the run travel with the Ray job.
        kwargs["runtime_env"] = {"env_vars": forwarded}
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise UserError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())}") from None
    quiet_ray_messages()
    return True


# Ends the local Ray this driver started once the driver is gone (SIGKILL, a lost terminal).
# Every process of that Ray (GCS, raylet, Ray's agents, workers, and the jobs they start)
# inherits OWNER_ENV from the driver: matched on that, not on command lines, which Ray's agents
# rewrite (``ray::...``) and would otherwise live on for a minute. Its own session.
OWNER_ENV = "GML_RAY_OWNER"
_WATCHER = """
import os, signal, sys, time
pid, needle = int(sys.argv[1]), sys.argv[2].encode() + b"\\0"
def alive(p):
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
def members():
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != os.getpid():
            try:
                with open(f"/proc/{e}/environ", "rb") as f:
                    if needle in f.read():
                        out.append(int(e))
            except OSError:
                pass
    return out
while alive(pid):
    time.sleep(0.5)
for sig in (signal.SIGTERM, signal.SIGKILL):
    left = members()
    for p in left:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    if not left:
        break
    time.sleep(3)
"""


def _watch_driver() -> None:
    """Mark this driver's environment with :data:`OWNER_ENV` (the local Ray it starts inherits
    it) and start the watcher that ends every marked process once the driver is gone (Linux;
    a no-op where /proc is missing)."""
    import subprocess
    import sys
    import uuid

    if not os.path.isdir("/proc"):
        return
    mark = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    os.environ[OWNER_ENV] = mark
    env = {k: v for k, v in os.environ.items() if k != OWNER_ENV}  # the watcher is no member
    subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), f"{OWNER_ENV}={mark}"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True, env=env)
