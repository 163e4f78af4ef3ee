"""Searchers propose configs (ask) and learn from rewards (tell). One algorithm per module."""
from .base_searcher import BaseSearcher
from .builder import SEARCHERS, build_searcher
from .grid import GridSearcher
from .random import RandomSearcher

__all__ = ["BaseSearcher", "SEARCHERS", "build_searcher", "GridSearcher", "RandomSearcher"]
