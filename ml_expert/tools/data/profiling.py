"""Profile a table and decide, column by column, what the pipeline uses.

Every finding carries the action taken, so the report can say why a column was dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_expert.tools.data.schema import Task

MAX_CATEGORIES = 50
ID_UNIQUE_RATIO = 0.95


def column_roles(frame: pd.DataFrame, target: str) -> tuple[dict[str, str], dict[str, str]]:
    """Split features into kinds ('numeric'/'categorical') and dropped columns with reasons."""
    kinds: dict[str, str] = {}
    dropped: dict[str, str] = {}
    n = len(frame)
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        non_null = col.dropna()
        unique = non_null.nunique()
        if non_null.empty:
            dropped[name] = "every value is missing"
        elif unique <= 1:
            dropped[name] = "constant column (one distinct value)"
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            integral = bool((non_null == non_null.round()).all())
            if integral and n >= 20 and unique >= ID_UNIQUE_RATIO * n and _is_sequential(non_null):
                dropped[name] = f"ID-like: {unique} distinct integers in {n} rows, in sequence"
            else:
                kinds[name] = "numeric"
        else:
            numeric = pd.to_numeric(non_null, errors="coerce")
            if numeric.notna().mean() >= 0.95:
                kinds[name] = "numeric"
            elif n >= 20 and unique >= ID_UNIQUE_RATIO * len(non_null):
                dropped[name] = f"ID-like: {unique} distinct values in {len(non_null)} non-missing rows"
            elif unique > MAX_CATEGORIES:
                dropped[name] = f"high-cardinality text ({unique} distinct values > {MAX_CATEGORIES})"
            else:
                kinds[name] = "categorical"
    return kinds, dropped


def _is_sequential(values: pd.Series) -> bool:
    ordered = np.sort(values.to_numpy(dtype=float))
    steps = np.diff(ordered)
    return bool(len(steps) and np.mean(steps == 1) > 0.9)


def profile_table(frame: pd.DataFrame, target: str, task: Task) -> dict[str, Any]:
    """Summary statistics; aggregate figures only, never a row of the data."""
    columns: dict[str, Any] = {}
    for name in frame.columns:
        col = frame[name]
        entry: dict[str, Any] = {
            "dtype": str(col.dtype),
            "missing": int(col.isna().sum()),
            "missing_pct": round(float(col.isna().mean() * 100), 2),
            "distinct": int(col.nunique()),
        }
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            desc = col.describe()
            entry.update({k: _num(desc.get(k)) for k in ("mean", "std", "min", "25%", "50%", "75%", "max")})
        columns[name] = entry
    profile: dict[str, Any] = {
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "duplicate_rows": int(frame.duplicated().sum()),
        "missing_cells": int(frame.isna().sum().sum()),
        "column_profiles": columns,
    }
    y = frame[target]
    if task == "classification":
        counts = y.value_counts()
        profile["class_balance"] = {str(k): int(v) for k, v in counts.items()}
        profile["imbalance_ratio"] = round(float(counts.max() / max(counts.min(), 1)), 3)
    else:
        profile["target_stats"] = {k: _num(v) for k, v in y.describe().items() if k != "count"}
    return profile


def leakage_suspects(frame: pd.DataFrame, target: str, kinds: dict[str, str], task: Task) -> dict[str, str]:
    """Numeric features that alone almost reproduce the target (a near-copy of the label)."""
    suspects: dict[str, str] = {}
    y = frame[target]
    for name, kind in kinds.items():
        if kind != "numeric":
            continue
        x = pd.to_numeric(frame[name], errors="coerce")
        mask = x.notna() & y.notna()
        if mask.sum() < 10:
            continue
        if task == "regression":
            corr = float(np.corrcoef(x[mask], y[mask].astype(float))[0, 1]) if x[mask].std() > 0 else 0.0
            if abs(corr) >= 0.999:
                suspects[name] = f"correlation with the target {corr:.4f}"
        else:
            # Each feature value maps to one class and there are few values: a relabelled target.
            purity = frame.loc[mask].groupby(x[mask])[target].agg(lambda s: s.value_counts().iloc[0] / len(s))
            distinct = x[mask].nunique()
            if distinct <= max(20, y.nunique() * 2) and float(purity.min()) == 1.0 and distinct > 1:
                suspects[name] = f"each of its {distinct} values maps to exactly one class"
    return suspects


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else round(value, 6)
