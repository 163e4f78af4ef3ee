"""How gml-ray starts or joins Ray, with this stack's traps handled (see the README)."""
from __future__ import annotations

import logging
import os
import socket

from .errors import UserError

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


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``), or start a local Ray; True if this call started Ray.

    ``num_cpus``/``num_gpus`` size a local Ray (default: what the machine has); a cluster's nodes
    declare their own."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address in (None, "", "local"):
        # An embedded instance needs no token; without this Ray writes ~/.ray/auth_token and warns.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                 include_dashboard=False, **kwargs)
        _watch_driver()
        return True
    if address.startswith(("http://", "https://")):
        raise UserError(f"--address {address} is the dashboard's address; give the GCS address "
                        f"(host:6379) or 'auto'")
    if address != "auto":
        _probe(address)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise UserError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())}") from None
    return True


# Ends the local Ray this driver started once the driver is gone (SIGKILL, a lost terminal):
# Ray's own agents would otherwise live on for a minute. Its own session; it exits with them.
_WATCHER = """
import os, signal, sys, time
pid, session = int(sys.argv[1]), sys.argv[2].encode()
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
                with open(f"/proc/{e}/cmdline", "rb") as f:
                    if session in f.read():
                        out.append(int(e))
            except OSError:
                pass
    return out
while alive(pid):
    time.sleep(0.5)
for sig in (signal.SIGTERM, signal.SIGKILL):
    for p in members():
        try:
            os.kill(p, sig)
        except OSError:
            pass
    time.sleep(3)
"""


def _watch_driver() -> None:
    """Start the watcher of this driver's local Ray (Linux; a no-op where /proc is missing)."""
    import subprocess
    import sys

    import ray

    if not os.path.isdir("/proc"):
        return
    try:
        session = ray._private.worker._global_node.session_name
    except AttributeError:  # a Ray without it: nothing to watch by
        return
    subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), session],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
