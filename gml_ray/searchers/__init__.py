"""Searchers propose configs (ask) and learn from rewards (tell). One algorithm per module."""
from .base_searcher import BaseSearcher
from .batch import BatchSearcher
from .builder import SEARCHERS, build_searcher
from .evolution import EvolutionSearcher
from .grid import GridSearcher
from .lamcts import LamctsSearcher  # imports torch only when one is built
from .optuna import OptunaSearcher  # imports optuna (an extra) only when one is built
from .random import RandomSearcher
from .skopt import SkoptSearcher  # imports scikit-optimize only when one is built

__all__ = ["BaseSearcher", "SEARCHERS", "build_searcher", "BatchSearcher", "EvolutionSearcher",
           "GridSearcher", "LamctsSearcher", "OptunaSearcher", "RandomSearcher", "SkoptSearcher"]
