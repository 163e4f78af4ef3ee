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


def check_resources(resources: dict[str, float]) -> None:
    """Fail at once (UserError) when no alive node of the cluster could ever run one job.

    Ray would keep such a job PENDING forever. Set GML_SKIP_RESOURCE_CHECK=1 on an autoscaling
    cluster whose node types are not up yet.
    """
    import ray

    if os.environ.get("GML_SKIP_RESOURCE_CHECK") == "1":
        return
    wanted = {_RAY_NAMES.get(k, k): v for k, v in resources.items() if v}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0) >= v for k, v in wanted.items()) for node in nodes):
        return
    offer = "; ".join(", ".join(f"{k} {v:g}" for k, v in sorted(node.items())
                                if not k.startswith("node:") and k != "object_store_memory")
                      for node in nodes) or "no alive node"
    ask = ", ".join(f"{k}: {v:g}" for k, v in resources.items())
    hint = ""
    if wanted.get("GPU") and not any(node.get("GPU", 0) >= wanted["GPU"] for node in nodes):
        hint = ("; without such GPUs set task.resources: {num_gpus: 0}, or declare GPUs for a "
                "local Ray with --num-gpus N")
    raise UserError(f"task.resources {{{ask}}}: no node of the Ray cluster can run a job "
                    f"(nodes offer: {offer}){hint}")


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
