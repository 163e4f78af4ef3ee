"""``pavi`` for GML training scripts run by gml-ray (manual 2.6), when no real pavi is installed.

gml-ray puts this package's folder at the end of a job's import path only when ``import pavi``
would otherwise fail, so a real pavi installation (or a ``pavi`` of the user's own) always wins.
``SummaryWriter(...).add_scalar(tag, value, step)`` reports into gml-ray's store like
:class:`gml_ray.SummaryWriter`; with ``MOCK_PAVI=2`` the calls are accepted and nothing is stored.
pavi's other ``add_*`` calls (images, text, snapshots, ...) are accepted and ignored, with one
warning per kind, since gml-ray stores scalars only.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

from gml_ray.reporting import SummaryWriter as _GmlWriter

__all__ = ["SummaryWriter"]
_warned: set[str] = set()


class SummaryWriter(_GmlWriter):
    """pavi's ``SummaryWriter(session_text, project=..., model=..., ...)``; scalars go to gml-ray."""

    def __init__(self, session_text: Any = None, *args: Any, **kwargs: Any) -> None:
        name = session_text if isinstance(session_text, str) else kwargs.get("name")
        super().__init__(name)

    def __getattr__(self, attr: str) -> Callable[..., None]:
        if not attr.startswith("add_"):
            raise AttributeError(attr)

        def ignored(*args: Any, **kwargs: Any) -> None:
            if attr not in _warned:
                _warned.add(attr)
                print(f"gml-ray pavi: {attr} is not stored (gml-ray keeps scalars only)", file=sys.stderr)
        return ignored
