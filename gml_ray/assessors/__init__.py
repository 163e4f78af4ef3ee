"""Assessors stop poor jobs early from their streamed reward curve."""
from .base import ASSESSORS, AssessResult, BaseAssessor, build_assessor

__all__ = ["ASSESSORS", "AssessResult", "BaseAssessor", "build_assessor"]
