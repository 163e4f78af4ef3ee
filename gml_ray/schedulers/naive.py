"""The manual's import path for the scheduler (``from gml.schedulers import NaiveScheduler``).

A facade: the scheduler lives in :mod:`gml_ray.engine.scheduler`.
"""
from gml_ray.engine.scheduler import NaiveScheduler
from gml_ray.engine.spec import job_name

__all__ = ["NaiveScheduler", "job_name"]
