"""Assessors stop poor jobs early from their streamed reward curve."""
from .base import ASSESSORS, AssessResult, BaseAssessor, build_assessor
from .curve_fitting import CurveFittingAssessor
from .median_stop import MedianStopAssessor

__all__ = ["ASSESSORS", "AssessResult", "BaseAssessor", "CurveFittingAssessor",
           "MedianStopAssessor", "build_assessor"]
