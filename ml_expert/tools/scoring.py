"""The one place that says how a model is scored, so every phase ranks models the same way."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score

IMBALANCE_FOR_BALANCED = 3.0


def primary_metric(task: str, imbalance_ratio: float | None) -> tuple[str, str]:
    """The metric that chooses the model, and why."""
    if task == "regression":
        return "r2", "regression: R² on the validation split"
    if imbalance_ratio is not None and imbalance_ratio >= IMBALANCE_FOR_BALANCED:
        return (
            "balanced_accuracy",
            f"classes are imbalanced (largest/smallest = {imbalance_ratio:.1f} >= {IMBALANCE_FOR_BALANCED}):"
            " balanced accuracy so the minority counts",
        )
    return "accuracy", "classification with balanced enough classes: accuracy on the validation split"


def score(metric: str, y_true: np.ndarray, scores: np.ndarray) -> float:
    """`scores`: class probabilities [N, K] for classification, predictions [N] for regression."""
    if metric == "r2":
        return float(r2_score(y_true, np.ravel(scores)))
    labels = np.argmax(scores, axis=1)
    if metric == "balanced_accuracy":
        return float(balanced_accuracy_score(y_true, labels))
    return float(accuracy_score(y_true, labels))


def predict_scores(model, frame) -> np.ndarray:
    """Probabilities for a classifier pipeline, predictions for a regressor."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(frame))
    return np.asarray(model.predict(frame), dtype=float)
