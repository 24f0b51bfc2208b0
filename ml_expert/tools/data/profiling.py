"""Profile a table and decide, column by column, what the pipeline uses.

Every finding carries the action taken, so the report can say why a column was dropped. The
profile holds aggregate figures only (counts, moments, quantiles), never a row of the data.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ml_expert.runtime.inference import DAY_MONTH_YEAR, YEAR_MONTH_DAY
from ml_expert.tools.data.schema import DATETIME_REGEX, Task
from ml_expert.tools.data.text import is_text

MAX_CATEGORIES = 50
ID_UNIQUE_RATIO = 0.95
CORRELATION_THRESHOLD = 0.95
LEAKAGE_ACCURACY = 0.99
LEAKAGE_CORRELATION = 0.99
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key|index|idx)$|^(id|row|index|idx)[_\s-]?", re.IGNORECASE)
# ISO-like dates: the only forms turned into features, because serving must parse them the same way.
DATETIME_PATTERN = DATETIME_REGEX.pattern


def imbalance_ratio(labels: pd.Series) -> float:
    """Largest class count over smallest (1.0 when balanced)."""
    counts = labels.value_counts()
    return round(float(counts.max() / max(counts.min(), 1)), 3)


def column_roles(frame: pd.DataFrame, target: str) -> tuple[dict[str, str], dict[str, str]]:
    """Split features into kinds ('numeric'/'categorical'/'datetime'/'text') and dropped columns with reasons.

    Free text (several words per value, many distinct values) is told apart before the ID rule:
    a name column is unique per row, yet its words ("Mrs", a large family's surname) carry signal.
    """
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
            dropped[name] = "every value is missing: nothing to learn from"
        elif unique <= 1:
            dropped[name] = "constant column (one distinct value): nothing to learn from"
        elif pd.api.types.is_bool_dtype(col):
            kinds[name] = "categorical"
        elif pd.api.types.is_numeric_dtype(col):
            integral = bool((non_null == non_null.round()).all())
            named_id = bool(_ID_NAME.search(str(name)))
            if (
                integral
                and n >= 20
                and unique >= ID_UNIQUE_RATIO * n
                and (_is_sequential(non_null) or named_id)
            ):
                dropped[name] = f"ID-like: {unique} distinct integers in {n} rows; an ID carries no signal"
            else:
                kinds[name] = "numeric"
        else:
            text = non_null.astype(str).str.strip()
            numeric = pd.to_numeric(text, errors="coerce")
            if numeric.notna().mean() >= 0.95:
                kinds[name] = "numeric"
            elif text.str.fullmatch(DATETIME_PATTERN).mean() >= 0.95 or date_order(text) is not None:
                kinds[name] = "datetime"
            elif is_text(text):
                kinds[name] = "text"
            elif n >= 20 and unique >= ID_UNIQUE_RATIO * len(non_null):
                dropped[name] = (
                    f"ID-like: {unique} distinct values in {len(non_null)} non-missing rows (unique per row)"
                )
            else:
                kinds[name] = "categorical"
    return kinds, dropped


def date_order(text: pd.Series) -> str | None:
    """'ymd' for a column of dates written 2024/12/31 (>= 95 % of the values); 'dmy' or 'mdy' for
    one written 31/12/2024 or 12/31/2024 when the values show the order: a first number above 12
    and none in second place (dmy), or the reverse (mdy). None otherwise: a column whose every day
    is <= 12 cannot be told apart, and reading 03/04 the wrong way round is a silently wrong date."""
    values = [v.strip() for v in text.dropna().astype(str)]
    if not values:
        return None
    for pattern in (YEAR_MONTH_DAY, DAY_MONTH_YEAR):
        head = values[:2000]  # a cheap look at the first values sets most text columns aside
        if sum(bool(pattern.fullmatch(v)) for v in head) < 0.9 * len(head):
            continue
        matches = [m for m in map(pattern.fullmatch, values) if m]
        if len(matches) < 0.95 * len(values):
            continue
        if pattern is YEAR_MONTH_DAY:
            return "ymd"  # year first is always year, month, day
        first = max(int(m[1]) for m in matches)
        second = max(int(m[3]) for m in matches)
        if first > 12 and second <= 12:
            return "dmy"
        if second > 12 and first <= 12:
            return "mdy"
    return None


def _is_sequential(values: pd.Series) -> bool:
    """Dense distinct integers (a counter), also when only a sample of the rows is seen."""
    array = values.to_numpy(dtype=float)
    span = array.max() - array.min() + 1
    return bool(len(array) > 1 and span <= 2 * len(np.unique(array)))


def correlated_pairs(frame: pd.DataFrame, numeric: list[str]) -> list[dict[str, Any]]:
    """Pairs of numeric features with |Pearson r| >= CORRELATION_THRESHOLD (at most 20, strongest first)."""
    if len(numeric) < 2 or len(numeric) > 300:
        return []
    values = frame[numeric].apply(pd.to_numeric, errors="coerce")
    corr = values.corr().abs().to_numpy()
    pairs = []
    for i in range(len(numeric)):
        for j in range(i + 1, len(numeric)):
            r = corr[i, j]
            if np.isfinite(r) and r >= CORRELATION_THRESHOLD:
                pairs.append({"columns": [numeric[i], numeric[j]], "abs_r": round(float(r), 4)})
    pairs.sort(key=lambda p: -p["abs_r"])
    return pairs[:20]


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
        "dtypes": {k: int(v) for k, v in frame.dtypes.astype(str).value_counts().items()},
        "duplicate_rows": int(frame.duplicated().sum()),
        "missing_cells": int(frame.isna().sum().sum()),
        "column_profiles": columns,
    }
    y = frame[target]
    if task == "classification":
        counts = y.value_counts()
        profile["class_balance"] = {str(k): int(v) for k, v in counts.items()}
        profile["imbalance_ratio"] = imbalance_ratio(y)
    else:
        profile["target_stats"] = {k: _num(v) for k, v in y.astype(float).describe().items() if k != "count"}
    return profile


def leakage_suspects(frame: pd.DataFrame, target: str, kinds: dict[str, str], task: Task) -> dict[str, str]:
    """Features that alone almost reproduce the target: a near-copy or relabelling of the label."""
    suspects: dict[str, str] = {}
    y = frame[target]
    for name, kind in kinds.items():
        if kind == "datetime":
            continue
        raw = frame[name]
        x = pd.to_numeric(raw, errors="coerce") if kind == "numeric" else raw.astype(str)
        mask = x.notna() & y.notna()
        if mask.sum() < 10:
            continue
        if task == "regression":
            if kind != "numeric" or x[mask].std() == 0:
                continue
            corr = float(np.corrcoef(x[mask], y[mask].astype(float))[0, 1])
            if abs(corr) >= LEAKAGE_CORRELATION:
                suspects[name] = f"correlation with the target {corr:.4f} (>= {LEAKAGE_CORRELATION})"
        else:
            distinct = x[mask].nunique()
            if distinct < 2:
                continue
            if distinct <= max(20, y.nunique() * 2) and distinct <= mask.sum() / 5:
                # Few values, each on several rows: the accuracy of a value -> majority-class lookup.
                table = pd.crosstab(x[mask], y[mask])
                accuracy = float(table.max(axis=1).sum() / mask.sum())
                how = f"its {distinct} values alone"
            elif kind == "numeric" and mask.sum() >= 50:
                # Many values: the best K-1 thresholds on this feature alone (a K-leaf tree).
                accuracy = _threshold_accuracy(x[mask].to_numpy(float), y[mask].astype(str).to_numpy())
                how = "thresholds on this feature alone"
            else:
                continue
            if accuracy >= LEAKAGE_ACCURACY:
                suspects[name] = (
                    f"{how} predict the target with accuracy {accuracy:.3f} (>= {LEAKAGE_ACCURACY})"
                )
    return suspects


def _threshold_accuracy(x: np.ndarray, y: np.ndarray, max_rows: int = 5000) -> float:
    """Training accuracy of a tree with one leaf per class on one feature (leaves of >= 1% of rows)."""
    from sklearn.tree import DecisionTreeClassifier

    if len(x) > max_rows:
        pick = np.random.default_rng(0).choice(len(x), max_rows, replace=False)
        x, y = x[pick], y[pick]
    leaves = max(2, len(np.unique(y)))
    tree = DecisionTreeClassifier(
        max_leaf_nodes=leaves, min_samples_leaf=max(5, len(x) // 100), random_state=0
    )
    tree.fit(x.reshape(-1, 1), y)
    return float(tree.score(x.reshape(-1, 1), y))


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else round(value, 6)
