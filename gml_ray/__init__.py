"""gml-ray: the GML hyperparameter-search workflow on Ray.

Training scripts import :class:`SummaryWriter` (or :func:`report`) and the checkpoint calls
(:func:`checkpoint`, :func:`get_checkpoint`, :func:`restored_step`, :func:`checkpoint_dir`) from
here; this module stays light (no Ray, no torch) so that importing it costs nothing in a job.
"""
from typing import Any

from gml_ray.checkpoints import checkpoint, checkpoint_dir, get_checkpoint, restored_step
from gml_ray.reporting import SummaryWriter, report

__version__ = "0.1.0"
__all__ = ["SummaryWriter", "report", "checkpoint", "checkpoint_dir", "get_checkpoint", "restored_step",
           "pareto_front", "__version__"]


def __getattr__(name: str) -> Any:
    """``gml_ray.pareto_front`` (:func:`gml_ray.views.front.pareto_front`), imported on first use:
    a job importing gml_ray never loads the store."""
    if name == "pareto_front":
        from gml_ray.views.front import pareto_front
        return pareto_front
    raise AttributeError(f"module 'gml_ray' has no attribute {name!r}")
