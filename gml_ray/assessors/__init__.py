"""Assessors stop poor jobs early from their streamed reward curve."""
from .asha import AshaAssessor, HyperbandAssessor
from .base import ASSESSORS, AssessResult, BaseAssessor, build_assessor
from .curve_fitting import CurveFittingAssessor
from .median_stop import MedianStopAssessor

__all__ = ["ASSESSORS", "AssessResult", "AshaAssessor", "BaseAssessor", "CurveFittingAssessor",
           "HyperbandAssessor", "MedianStopAssessor", "build_assessor"]
