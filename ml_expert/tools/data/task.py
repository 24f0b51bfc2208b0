"""Decide classification or regression from the target column."""

from __future__ import annotations

import pandas as pd

from ml_expert.tools.data.schema import Task

MAX_CLASSES = 50


def detect_task(target: pd.Series) -> tuple[Task, str]:
    """Return the task and the reason, so the decision can be recorded."""
    values = target.dropna()
    unique = values.nunique()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification", f"target is non-numeric ({values.dtype}) with {unique} distinct values"
    integral = bool((values == values.round()).all())
    if integral and unique <= MAX_CLASSES and unique <= max(2, len(values) // 5):
        return "classification", f"target holds {unique} distinct integer values (<= {MAX_CLASSES})"
    return "regression", f"target is numeric with {unique} distinct values"
