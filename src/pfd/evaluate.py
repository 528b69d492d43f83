"""Errors of a model against labelled frames (moved to :mod:`pfd.analysis.errors`)."""

from __future__ import annotations

from pfd.analysis.errors import (
    Errors,
    Prediction,
    errors_of,
    evaluate,
    evaluate_by_subset,
    predict,
)

__all__ = [
    "Errors",
    "Prediction",
    "errors_of",
    "evaluate",
    "evaluate_by_subset",
    "predict",
]
