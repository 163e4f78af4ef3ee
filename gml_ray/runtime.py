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


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join ``address`` (or ``RAY_ADDRESS``), or start a local Ray; True if this call started Ray."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address in (None, "", "local"):
        # An embedded instance needs no token; without this Ray writes ~/.ray/auth_token and warns.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1,
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
