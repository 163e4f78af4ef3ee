"""What the LA-MCTS models share: float types, the device to run on, tensor helpers."""
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
    """Pairwise squared Euclidean distances (m, n), clamped at 0 against cancellation."""
    d = (a * a).sum(1)[:, None] - 2.0 * (a @ b.T) + (b * b).sum(1)[None, :]
    return d.clamp_min_(0.0)
