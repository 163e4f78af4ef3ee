"""Searchers propose configs (ask) and learn from rewards (tell). One algorithm per module."""
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher, build_searcher
from gml_ray.searchers.batch import BatchSearcher
from gml_ray.searchers.evolution import EvolutionSearcher
from gml_ray.searchers.grid import GridSearcher
from gml_ray.searchers.lamcts.searcher import LamctsSearcher
from gml_ray.searchers.optuna import OptunaSearcher  # imports optuna (an extra) only when one is built
from gml_ray.searchers.random import RandomSearcher
from gml_ray.searchers.skopt import SkoptSearcher  # imports scikit-optimize only when one is built

__all__ = ["BaseSearcher", "SEARCHERS", "build_searcher", "BatchSearcher", "EvolutionSearcher",
           "GridSearcher", "LamctsSearcher", "OptunaSearcher", "RandomSearcher", "SkoptSearcher"]
