"""Per-group metrics and the usual gap measures, computed on the test split's model frame.

Groups come from `--sensitive COL` or, when none is named, from columns whose name says they
are sensitive (sex, gender, race, ethnicity, age). Numeric columns with many values (age) are
cut into quantile bins so each group has rows; a group smaller than MIN_GROUP_ROWS is reported
but left out of the gaps, because a gap between a group of 3 rows and the rest is noise.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ml_expert.tools.selection.verdicts import Figure

AUTO_SENSITIVE = ("sex", "gender", "race", "ethnicity", "age")
MIN_GROUP_ROWS = 5
NUMERIC_BINS = 4
MAX_CATEGORIES_BEFORE_BINNING = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassGroup(_Strict):
    rows: int
    accuracy: Figure
    selection_rate: dict[str, float | None]  # positive class -> rate
    true_positive_rate: dict[str, float | None]
    false_positive_rate: dict[str, float | None]


class ClassificationFairness(_Strict):
    """One sensitive column's figures for a classifier; `gap` (equalized odds) is what the
    validation gate bounds."""

    per_group: dict[str, ClassGroup]
    groups_compared: list[str]
    demographic_parity_difference: Figure
    equalized_odds_difference: Figure
    accuracy_gap: Figure
    gap: Figure


class RegressionGroup(_Strict):
    rows: int
    mae: Figure
    rmse: Figure
    mean_error: Figure


class RegressionFairness(_Strict):
    """One sensitive column's figures for a regressor; `gap` (the MAE difference relative to the
    overall MAE) is what the validation gate bounds."""

    per_group: dict[str, RegressionGroup]
    groups_compared: list[str]
    mae_difference: Figure
    gap: Figure


Fairness = ClassificationFairness | RegressionFairness


def auto_sensitive(names: list[str]) -> list[str]:
    """Columns whose name is, or contains as a word, one of AUTO_SENSITIVE."""
    found = []
    for name in names:
        words = set(re.split(r"[^a-z]+", str(name).lower()))
        if words & set(AUTO_SENSITIVE):
            found.append(name)
    return found


def group_labels(values: pd.Series) -> pd.Series:
    """Group label per row: the category, or a quantile bin for a many-valued numeric column.

    Missing values form their own group ("missing"), binned or not."""
    missing = values.isna() | (values.astype(str) == "")
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric[~missing].notna().all() and numeric[~missing].nunique() > MAX_CATEGORIES_BEFORE_BINNING:
        binned = pd.qcut(numeric[~missing], q=NUMERIC_BINS, duplicates="drop").astype(str)
        return binned.reindex(values.index).fillna("missing").astype(str)
    return values.map(str).where(~missing, "missing").astype(str)


def _rate(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def classification_fairness(
    groups: pd.Series, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> ClassificationFairness:
    """Per-group accuracy, selection and error rates; demographic parity and equalized odds.

    Binary: the positive class is index 1. Multiclass: each class in turn is "positive"
    (one-vs-rest) and the largest gap over classes is reported.
    """
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    labels = groups.to_numpy()
    positives = [1] if n_classes == 2 else list(range(n_classes))
    per_group: dict[str, Any] = {}
    for g in sorted(set(labels)):
        m = labels == g
        t, p = y_true[m], y_pred[m]
        entry: dict[str, Any] = {"rows": int(m.sum()), "accuracy": float((t == p).mean())}
        entry["selection_rate"] = {str(c): _rate(p == c) for c in positives}
        entry["true_positive_rate"] = {str(c): _rate(p[t == c] == c) for c in positives}
        entry["false_positive_rate"] = {str(c): _rate(p[t != c] == c) for c in positives}
        per_group[g] = entry
    counted = {g: e for g, e in per_group.items() if e["rows"] >= MIN_GROUP_ROWS}

    def spread(field: str) -> float:
        worst = 0.0
        for c in positives:
            vals = [e[field][str(c)] for e in counted.values() if e[field][str(c)] is not None]
            if len(vals) >= 2:
                worst = max(worst, max(vals) - min(vals))
        return float(worst)

    dp = spread("selection_rate")
    eo = max(spread("true_positive_rate"), spread("false_positive_rate"))
    accs = [e["accuracy"] for e in counted.values()]
    return ClassificationFairness(
        per_group=per_group,
        groups_compared=sorted(counted),
        demographic_parity_difference=dp,
        equalized_odds_difference=eo,
        accuracy_gap=float(max(accs) - min(accs)) if len(accs) >= 2 else 0.0,
        # The gated figure: equalized odds compares error rates among people with the same true
        # label, so unlike demographic parity it does not punish different base rates.
        gap=eo,
    )


def regression_fairness(groups: pd.Series, y_true: np.ndarray, y_pred: np.ndarray) -> RegressionFairness:
    """Per-group MAE and RMSE; the gap is the largest MAE difference relative to the overall MAE."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.ravel(np.asarray(y_pred, dtype=float))
    labels = groups.to_numpy()
    overall_mae = float(np.mean(np.abs(y_true - y_pred))) or 1.0
    per_group: dict[str, Any] = {}
    for g in sorted(set(labels)):
        m = labels == g
        err = y_true[m] - y_pred[m]
        per_group[g] = {
            "rows": int(m.sum()),
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mean_error": float(np.mean(err)),
        }
    counted = {g: e for g, e in per_group.items() if e["rows"] >= MIN_GROUP_ROWS}
    maes = [e["mae"] for e in counted.values()]
    diff = float(max(maes) - min(maes)) if len(maes) >= 2 else 0.0
    return RegressionFairness(
        per_group=per_group, groups_compared=sorted(counted), mae_difference=diff, gap=diff / overall_mae
    )


def fairness_report(
    frame: pd.DataFrame,
    columns: dict[str, str],
    task: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    n_classes: int,
) -> dict[str, Fairness]:
    """`columns` maps a sensitive column's display name to its key in `frame` (the model frame)."""
    out: dict[str, Fairness] = {}
    for name, key in columns.items():
        groups = group_labels(frame[key])
        if task == "classification":
            out[name] = classification_fairness(groups, y_true, np.argmax(scores, axis=1), n_classes)
        else:
            out[name] = regression_fairness(groups, y_true, scores)
    return out
