"""Assessors stop poor jobs early from their streamed reward curve."""
from gml_ray.assessors.asha import AshaAssessor, HyperbandAssessor
from gml_ray.assessors.curve_fitting import CurveFittingAssessor
from gml_ray.assessors.median_stop import MedianStopAssessor
from gml_ray.plugins.assessor import ASSESSORS, AssessResult, BaseAssessor, build_assessor

__all__ = ["ASSESSORS", "AssessResult", "AshaAssessor", "BaseAssessor", "CurveFittingAssessor",
           "HyperbandAssessor", "MedianStopAssessor", "build_assessor"]
