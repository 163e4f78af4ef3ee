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
* 2-means lives in :mod:`.kmeans`, the SVM in :mod:`.svm`, the GP in :mod:`.gp`; all import
  torch at top level, so the searcher imports them lazily.

This module holds what they share: float types, the device to run on, tensor helpers.
"""
from __future__ import annotations

import warnings

import torch

DTYPE = torch.float64
CLS_DTYPE = torch.float32  # 2-means and the SVM
_warned_no_cuda = False


def pick_device(enable_cuda: bool) -> torch.device:
    """cuda when ``enable_cuda`` and CUDA is available, else cpu.

    When CUDA was asked for but is missing, warns once per process (RuntimeWarning).
    """
    global _warned_no_cuda
    if enable_cuda and torch.cuda.is_available():
        return torch.device("cuda")
    if enable_cuda and not _warned_no_cuda:
        _warned_no_cuda = True
        warnings.warn("enable_cuda is set but CUDA is not available: the LA-MCTS models run on cpu",
                      RuntimeWarning, stacklevel=2)
    return torch.device("cpu")


def as_float(x: torch.Tensor, device: torch.device | None = None,
              dtype: torch.dtype = DTYPE) -> torch.Tensor:
    return torch.as_tensor(x).to(device=device, dtype=dtype)


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances (..., m, n) of a (..., m, d) and b (..., n, d) (a
    batch when 3-D), clamped at 0 against cancellation."""
    d = (a * a).sum(-1).unsqueeze(-1) + (b * b).sum(-1).unsqueeze(-2)
    if a.dim() == 2 and b.dim() == 2:
        d = torch.addmm(d, a, b.T, alpha=-2.0)  # the product and the sum in one pass
    else:
        d = torch.baddbmm(d.expand(a.shape[0], -1, -1), a, b.transpose(-1, -2), alpha=-2.0)
    return d.clamp_min_(0.0)


def pad_stack(rows: list[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors of shapes (n_i, ...) into (len, max n_i, ...), padded with ``value``, and
    the bool mask (len, max n_i) of the real rows."""
    lens = torch.tensor([r.shape[0] for r in rows], device=rows[0].device)
    out = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value)
    valid = torch.arange(out.shape[1], device=out.device)[None, :] < lens[:, None]
    return out, valid
