"""The manual's import path for the searcher base (``from gml.searchers.base_searcher import BaseSearcher``).

A facade: the contract lives in :mod:`gml_ray.plugins.searcher`.
"""
from gml_ray.plugins.searcher import BaseSearcher

__all__ = ["BaseSearcher"]
