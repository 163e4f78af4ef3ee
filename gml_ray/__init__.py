"""gml-ray: the GML hyperparameter-search workflow on Ray.

Training scripts import :class:`SummaryWriter` (or :func:`report`) from here; this module stays
light (no Ray, no torch) so that importing it costs nothing in a job.
"""
from gml_ray.reporting import SummaryWriter, report

__version__ = "0.1.0"
__all__ = ["SummaryWriter", "report", "__version__"]
