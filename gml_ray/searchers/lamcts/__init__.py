"""LA-MCTS: a tree that partitions the space by learned good/bad regions (``tree``), the torch
models it learns with (``kmeans``, ``svm``, ``gp``; their shared contracts in ``tensors``), the samplers that propose inside a region
(``samplers``), and the searcher that ties them to the ask/tell contract (``searcher``)."""
from gml_ray.searchers.lamcts.searcher import LamctsSearcher

__all__ = ["LamctsSearcher"]
