"""The manual's import path for jobs (``from gml.schedulers.job import ...``).

A facade: jobs live in :mod:`gml_ray.engine.job`. ``start``, ``wait``, ``kill`` and ``status``
are the manual's Job interface.
"""
from gml_ray.engine.job import CommandJob, FunctionJob, Job

__all__ = ["CommandJob", "FunctionJob", "Job"]
