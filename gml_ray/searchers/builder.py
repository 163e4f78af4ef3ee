"""The manual's import path for the searcher registry (``from gml.searchers.builder import SEARCHERS``).

A facade: the registry lives in :mod:`gml_ray.plugins.searcher`.
"""
from gml_ray.plugins.searcher import SEARCHERS, build_searcher

__all__ = ["SEARCHERS", "build_searcher"]
