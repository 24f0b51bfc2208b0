"""A decision threshold on P(positive) for a binary model, tuned on held-out predictions.

For threshold metrics (F1, balanced accuracy) the argmax cut-off (0.5) is rarely the best. The
threshold is chosen on predictions of rows the model never trained on, and its own score is
cross-fitted: the rows of each fold are cut at the threshold tuned on the other folds, so the
score that decides whether the threshold ships is not the one it was tuned on.
"""

from __future__ import annotations

import numpy as np

from ml_expert.tools.scoring import score, sign

MAX_CANDIDATES = 256


def best_threshold(metric: str, y: np.ndarray, p1: np.ndarray) -> float:
    """The cut-off on P(class 1) that scores best on these rows; ties go to the one nearest 0.5.

    Candidates are midpoints between neighbouring distinct probabilities (at most MAX_CANDIDATES
    quantiles), rounded to float32 so the ONNX graph (float32) cuts exactly where this does.
    """
    values = np.unique(np.asarray(p1, dtype=np.float64))
    if len(values) > MAX_CANDIDATES:
        values = np.unique(np.quantile(values, np.linspace(0, 1, MAX_CANDIDATES)))
    cuts = np.concatenate([[0.5], (values[1:] + values[:-1]) / 2]) if len(values) > 1 else np.array([0.5])
    cuts = np.unique(cuts.astype(np.float32)).astype(np.float64)
    proba = np.column_stack([1 - p1, p1])
    s = sign(metric)
    results = [(s * score(metric, y, proba, float(c)), -abs(c - 0.5), float(c)) for c in cuts]
    return max(results)[2]


def cross_fitted(metric: str, y: np.ndarray, p1: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per-row thresholds: each fold's rows get the threshold tuned on the other folds."""
    out = np.empty(len(y), dtype=np.float64)
    for k in np.unique(folds):
        rows = folds == k
        out[rows] = best_threshold(metric, y[~rows], p1[~rows])
    return out
