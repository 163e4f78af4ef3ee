"""The three models LA-MCTS needs, in torch: 2-means, a kernel SVM and a GP regressor.

Contracts shared by all three:

* the GP runs in float64 (its Cholesky factors need it); 2-means and the SVM, which only
  classify, run in float32 (:data:`CLS_DTYPE`), half the memory traffic and twice the matrix
  throughput, on the CPU as on a GPU; everything runs on the device of the inputs (or the device
  given to the :class:`GaussianProcess`); inputs of other dtypes are converted;
* 2-means, the SVM and the GP can be warm-started from an earlier solution (``init``,
  ``alpha0``, ``init``): LA-MCTS rebuilds its tree and refits its GP every iteration on a sample
  set that grew by one batch, and a warm start converges in a fraction of the steps;
* results are deterministic given the seed (random draws come from explicitly seeded
  generators, never from the global RNG);
* several 2-means problems (:func:`kmeans_many`) and several SVMs (:func:`fit_svms`) solve in
  one batch, padded to the largest: the tree fits all the nodes of a level at once, so each
  step's few small tensor operations run once a level, not once a node (on the CPU their
  dispatch, not their arithmetic, was the cost); each problem's iterates are those it has
  alone, up to floating-point rounding;
* 2-means lives in :mod:`.kmeans`, the SVM in :mod:`.svm`, the GP in :mod:`.gp`; this module
  gathers them, and imports torch at top level, so the searcher imports it lazily.
"""
from __future__ import annotations

from gml_ray.searchers.lamcts.gp import GaussianProcess
from gml_ray.searchers.lamcts.kmeans import kmeans, kmeans_many
from gml_ray.searchers.lamcts.svm import KernelSVM, fit_svms
from gml_ray.searchers.lamcts.tensors import CLS_DTYPE, pick_device

__all__ = ["pick_device", "kmeans", "kmeans_many", "KernelSVM", "fit_svms", "GaussianProcess",
           "CLS_DTYPE"]
