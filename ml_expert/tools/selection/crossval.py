"""Which rows compare the candidates: k-fold CV on small data, the validation split on large data.

Rule: with fewer than CV_MAX_ROWS rows in train + validation, one validation split is too small
to tell candidates apart (a 1,460-row file leaves 176 validation rows; a three-row difference of
45 chose a network that lost by 8 points on unseen rows), and CV_FOLDS fits per candidate are
cheap; above it the validation split is large enough and k extra fits are not.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from sklearn.model_selection import KFold, StratifiedKFold

CV_MAX_ROWS = 10_000
CV_FOLDS = 5
SKEW_FOR_LOG = 1.0  # sample skewness of a non-negative target above which log1p is tried
# Of the budget, at most, planned for cross-validating the baselines. CV comes first: on small
# data a single validation split chose badly (see above); the network's plan takes what is left
# (it never starts without the time for its minimum epochs: researcher.py).
CV_SHARE = 0.5
MIN_FOLDS = 3


class CVPlan(BaseModel):
    folds: int | None  # None: compare on the validation split
    rule: str


def plan_cv(
    train_rows: int, val_rows: int, features_out: int, classes: int | None, budget: float, families: list[str]
) -> CVPlan:
    """k-fold CV when the data is small and k fits of every family fit CV_SHARE of the budget by
    the nominal cost rule at the families' defaults, which is what CV fits (counts, never the
    clock; the search space's SEARCH_COST is for tuning trials); else fewer folds, else none."""
    from ml_expert.tools.selection.tuning import nominal_fit_seconds

    n = train_rows + val_rows
    if n >= CV_MAX_ROWS:
        return CVPlan(
            folds=None,
            rule=f"{n} train + validation rows >= {CV_MAX_ROWS}: candidates are compared on validation",
        )
    share = CV_SHARE * budget
    for k in (CV_FOLDS, MIN_FOLDS):
        rows = n * (k - 1) // k
        cost = k * sum(
            nominal_fit_seconds(f, rows, features_out, classes, at_defaults=True) for f in families
        )
        if cost <= share:
            return CVPlan(
                folds=k,
                rule=(
                    f"{n} train + validation rows < {CV_MAX_ROWS}: candidates are compared by {k}-fold "
                    f"cross-validation on train + validation (mean and spread of the fold scores); "
                    f"nominal cost {cost:.1f} s <= {CV_SHARE:.0%} of the {budget:g} s budget"
                ),
            )
    return CVPlan(
        folds=None,
        rule=(
            f"{n} rows < {CV_MAX_ROWS}, but even {MIN_FOLDS}-fold CV of {families} costs more than "
            f"{CV_SHARE:.0%} of the {budget:g} s budget by the nominal rule: compared on the validation split"
        ),
    )


def fold_ids(task: str, y: np.ndarray, seed: int, k: int = CV_FOLDS) -> np.ndarray:
    """The fold index of every row (stratified by class when every class has k rows)."""
    y = np.asarray(y)
    splitter = KFold(k, shuffle=True, random_state=seed)
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= k:
            splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    out = np.empty(len(y), dtype=np.int64)
    for index, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        out[held] = index
    return out


def skewed_positive(y: np.ndarray) -> tuple[bool, str]:
    """Whether a regression target is worth a log-scale candidate, and the figures."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3 or np.min(y) < 0:
        return False, f"minimum {np.min(y):.4g} < 0: log1p does not apply"
    centred = y - y.mean()
    sd = centred.std()
    skew = float((centred**3).mean() / sd**3) if sd > 0 else 0.0
    verdict = skew > SKEW_FOR_LOG
    return verdict, f"target >= 0 with skewness {skew:.2f} {'>' if verdict else '<='} {SKEW_FOR_LOG}"
