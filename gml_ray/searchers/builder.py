"""The SEARCHERS registry: ``searcher.type`` in a config names a class registered here."""
from __future__ import annotations

from typing import Any

from ..registry import Registry
from ..space import Dict

SEARCHERS = Registry("searcher")


def build_searcher(cfg: dict[str, Any], search_space: Dict) -> Any:
    """Build ``cfg['type']`` with the other keys as kwargs and ``search_space`` as first argument."""
    return SEARCHERS.build(cfg, search_space=search_space)
