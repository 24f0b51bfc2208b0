"""The one place that says how a model is scored, so every phase ranks models the same way.

Each metric has a task and a direction (greater is better, or a loss). The user chooses it
(`--metric`); the default is what the field expects: accuracy for classification, R² for
regression, whatever the class balance (imbalance is handled by candidates that must win on
the user's metric, never by switching the metric).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel
from sklearn import metrics as skm

from ml_expert.errors import UsageError
from ml_expert.tools.metric_names import MetricName


class Metric(BaseModel):
    name: str
    task: Literal["classification", "regression", "clustering"]
    greater_is_better: bool
    threshold: bool = False  # decided by a cut-off on P(positive) in a binary task: a tunable threshold
    binary_only: bool = False
    bounded_above: float | None = None  # the best possible value, when there is one
    help: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            name="accuracy",
            task="classification",
            greater_is_better=True,
            bounded_above=1.0,
            help="share of rows with the right class",
        ),
        Metric(
            name="balanced_accuracy",
            task="classification",
            greater_is_better=True,
            threshold=True,
            bounded_above=1.0,
            help="mean recall over the classes",
        ),
        Metric(
            name="f1",
            task="classification",
            greater_is_better=True,
            threshold=True,
            binary_only=True,
            bounded_above=1.0,
            help="F1 of the positive (second) class, binary tasks",
        ),
        Metric(
            name="f1_macro",
            task="classification",
            greater_is_better=True,
            bounded_above=1.0,
            help="unweighted mean F1 over the classes",
        ),
        Metric(
            name="roc_auc",
            task="classification",
            greater_is_better=True,
            bounded_above=1.0,
            help="area under the ROC curve (one-vs-rest macro for more than two classes)",
        ),
        Metric(
            name="log_loss",
            task="classification",
            greater_is_better=False,
            help="cross-entropy of the predicted probabilities",
        ),
        Metric(
            name="precision",
            task="classification",
            greater_is_better=True,
            threshold=True,
            binary_only=True,
            bounded_above=1.0,
            help="precision of the positive (second) class",
        ),
        Metric(
            name="recall",
            task="classification",
            greater_is_better=True,
            threshold=True,
            binary_only=True,
            bounded_above=1.0,
            help="recall of the positive (second) class",
        ),
        Metric(
            name="r2",
            task="regression",
            greater_is_better=True,
            bounded_above=1.0,
            help="coefficient of determination",
        ),
        Metric(name="rmse", task="regression", greater_is_better=False, help="root mean squared error"),
        Metric(name="mae", task="regression", greater_is_better=False, help="mean absolute error"),
        Metric(
            name="mape",
            task="regression",
            greater_is_better=False,
            help="mean absolute percentage error (a fraction)",
        ),
        Metric(
            name="rmsle",
            task="regression",
            greater_is_better=False,
            help="root mean squared logarithmic error (targets > -1)",
        ),
        Metric(
            name="silhouette",
            task="clustering",
            greater_is_better=True,
            bounded_above=1.0,
            help="mean silhouette: own cluster against the nearest other (tools/selection/clustering)",
        ),
    ]
}
if set(METRICS) != set(get_args(MetricName)):  # the CLI's choices and the definitions agree
    raise RuntimeError("tools/metric_names.MetricName and tools/scoring.METRICS differ")
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2", "clustering": "silhouette"}
# Threshold metrics whose optimum on held-out rows is degenerate (recall: call everything
# positive; precision: call almost nothing positive): argmax is kept for them.
DEGENERATE_THRESHOLD = {"precision", "recall"}


class MetricError(UsageError):
    """The metric does not exist or does not fit the task."""


def metric_info(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise MetricError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None


def greater_is_better(name: str) -> bool:
    return metric_info(name).greater_is_better


def sign(name: str) -> float:
    """+1 when greater is better, -1 for a loss: sign * score is always 'higher is better'."""
    return 1.0 if greater_is_better(name) else -1.0


def better(name: str, a: float, b: float) -> bool:
    """True when score a is strictly better than score b under the metric's direction."""
    return sign(name) * a > sign(name) * b


def primary_metric(task: str, requested: str | None = None, n_classes: int | None = None) -> tuple[str, str]:
    """The metric that chooses the model, and why: the user's, else the field's default."""
    if requested:
        info = metric_info(requested)
        if info.task != task:
            raise MetricError(f"--metric {requested} is a {info.task} metric; this task is {task}")
        if info.binary_only and n_classes is not None and n_classes != 2:
            raise MetricError(
                f"--metric {requested} is defined for two classes; this target has {n_classes} "
                f"(use {'f1_macro' if requested == 'f1' else 'balanced_accuracy or f1_macro'})"
            )
        return requested, f"the user's metric (--metric {requested}): {info.help}"
    name = DEFAULT_METRIC[task]
    return name, f"the default for {task} ({metric_info(name).help}); choose another with --metric"


def labels_from(scores: np.ndarray, threshold: float | np.ndarray | None = None) -> np.ndarray:
    """Class indices: argmax, or P(class 1) >= threshold in a binary task (a per-row array allowed)."""
    scores = np.asarray(scores)
    if threshold is not None and scores.shape[1] == 2:
        return (scores[:, 1] >= threshold).astype(np.int64)
    return np.argmax(scores, axis=1)


def score(
    metric: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float | np.ndarray | None = None,
) -> float:
    """`scores`: class probabilities [N, K] for classification, predictions [N] for regression.

    `threshold`: the decision threshold on P(class 1) of a binary model (None: argmax)."""
    info = metric_info(metric)
    y_true = np.asarray(y_true)
    if info.task == "regression":
        pred = np.ravel(np.asarray(scores, dtype=float))
        if metric == "r2":
            return float(skm.r2_score(y_true, pred))
        if metric == "rmse":
            return float(np.sqrt(skm.mean_squared_error(y_true, pred)))
        if metric == "mae":
            return float(skm.mean_absolute_error(y_true, pred))
        if metric == "mape":
            return float(skm.mean_absolute_percentage_error(y_true, pred))
        # rmsle: predictions below 0 are clipped (a log cannot take them), as most competitions do
        return float(np.sqrt(np.mean((np.log1p(np.clip(pred, 0, None)) - np.log1p(y_true)) ** 2)))
    proba = np.asarray(scores, dtype=float)
    k = proba.shape[1]
    if metric == "log_loss":
        clipped = np.clip(proba, 1e-15, 1)  # float32 rows sum to 1 only within float32 rounding
        clipped /= clipped.sum(axis=1, keepdims=True)
        if _class_indices(y_true, k):
            return _log_loss(y_true, clipped)
        return float(skm.log_loss(y_true, clipped, labels=list(range(k))))
    if metric == "roc_auc":
        present = np.unique(y_true)
        if len(present) < 2:
            return 0.5
        if k == 2:
            return float(skm.roc_auc_score(y_true, proba[:, 1]))
        if len(present) < k:  # a fold without some class: AUC over the classes present
            sub = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-15, None)
            index = np.searchsorted(present, y_true)
            if len(present) == 2:
                return float(skm.roc_auc_score(index, sub[:, 1]))
            return float(skm.roc_auc_score(index, sub, multi_class="ovr"))
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=list(range(k))))
    labels = labels_from(proba, threshold)
    if metric == "accuracy":
        if _class_indices(y_true, k):
            return float(np.mean(y_true == labels))  # sklearn's accuracy_score: the mean of the matches
        return float(skm.accuracy_score(y_true, labels))
    if metric == "balanced_accuracy":
        return float(skm.balanced_accuracy_score(y_true, labels))
    if metric == "f1_macro":
        return float(skm.f1_score(y_true, labels, average="macro", labels=list(range(k)), zero_division=0))
    if metric == "f1":
        return float(skm.f1_score(y_true, labels, zero_division=0))
    if metric == "precision":
        return float(skm.precision_score(y_true, labels, zero_division=0))
    return float(skm.recall_score(y_true, labels, zero_division=0))


def _class_indices(y_true: np.ndarray, k: int) -> bool:
    """True for a 1-d integer array of class indices 0..k-1: the rows the fast paths below take."""
    if y_true.ndim != 1 or y_true.dtype.kind not in "iu" or len(y_true) == 0:
        return False
    return bool(y_true.min() >= 0 and y_true.max() < k)


def _log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """scikit-learn's log_loss (1.9) without its input validation, equal to it to the bit
    (tests/test_scoring_fast.py): clip to [eps, 1 - eps], then the mean of -log P(true class).

    Greedy ensemble selection scores every candidate blend with it (hundreds of calls a run), and
    sklearn's checks cost ~3.5 ms a call on 150 rows, ~2.5 s a run; this costs ~30 us.
    """
    eps = np.finfo(proba.dtype).eps
    true = np.clip(proba[np.arange(len(y_true)), y_true], eps, 1 - eps)
    return float(np.mean(-np.log(true)))


def all_scores(
    task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Every metric that applies, so a report can show the user's beside the others."""
    n_classes = np.asarray(scores).shape[1] if task == "classification" else None
    out: dict[str, float] = {}
    for name, info in METRICS.items():
        if info.task != task or (info.binary_only and n_classes != 2):
            continue
        if name == "rmsle" and np.min(y_true) <= -1:
            continue
        if name == "mape" and np.any(np.asarray(y_true) == 0):
            continue
        try:
            out[name] = score(name, y_true, scores, threshold)
        except ValueError:
            continue
    return out


def predict_scores(model, frame) -> np.ndarray:
    """Probabilities for a classifier pipeline, predictions for a regressor.

    Joblib-parallel predictions run in order (the sequential backend): a random forest's threads
    add the trees' outputs under a lock in whatever order they finish, so two runs of the same
    seeded forest differed in the last bit (titanic's validation predictions, 1e-16) — enough to
    change a hash, and to flip an exact tie between candidates. Fits stay parallel (a fit is
    deterministic per tree); LightGBM and histogram boosting use their own threads, unaffected."""
    from joblib import parallel_config

    with parallel_config(backend="sequential"):
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(frame))
        return np.asarray(model.predict(frame), dtype=float)
