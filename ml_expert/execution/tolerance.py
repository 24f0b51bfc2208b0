"""How close the data-parallel network must land to the same seeded network in one process: one rule
per task, stated here once and used by the run's decision text, the benchmark
(benchmarks/network_tolerance.py) and the tests (tests/test_ray_train.py).

The two paths are not bit-identical: N workers each take 1/N of the planned batch from their own
shard, so the batches hold other rows, and DDP sums the gradients in another order; the one-process
path is also Keras `fit` (its optimizer and callbacks) on another backend. So the rule is a gap, on a
figure that means the same on every data set:

- classification: validation **accuracy** (a share of rows, bounded by 1), absolute gap at most
  `NETWORK_METRIC_TOLERANCE`. Those differences move a small network's accuracy by a few rows of
  the validation set, not by a whole class of errors.
- regression: an absolute gap in RMSE or MAE is in the target's units (a price in dollars or in
  cents), so no one number fits every data set. The figure is the validation **RMSE divided by the
  standard deviation of the validation targets** (`normalised_rmse`), absolute gap at most
  `NETWORK_NRMSE_TOLERANCE`. Why this figure rather than the gap in R²:
  - it has no unit: multiplying the target by 1000 (or shifting it) leaves it unchanged;
  - it is what both paths minimise: the network learns the target as z-scores of the training split
    with a mean-squared loss (`standardise_target`), so RMSE / std is, up to the training and
    validation splits' std, the square root of the validation loss both report. It does not depend
    on which `--metric` chose the model (R², RMSE, MAE, MAPE, RMSLE: only some are unit-free);
  - it is linear in the size of the errors, so one tolerance means the same on a good fit and on a
    poor one. On the same rows it equals sqrt(1 - R²) (scikit-learn's R²), so it is also an R² rule,
    but a fixed R² gap is not: at R² 0.99 (error 0.10 std) an R² gap of 0.05 lets the error grow to
    0.245 std, 2.4 times; at R² 0.30 (0.84 std) the same R² gap is 0.03 std.

Both figures are the network's error in a unit-free form (a share of rows wrong; the typical error in
standard deviations of the target), so both tolerances are absolute gaps on a 0-to-about-1 scale.
The measured gaps are in the constants' notes; this module imports neither Ray nor a deep-learning
framework.
"""

from __future__ import annotations

import math

import numpy as np

NETWORK_METRIC_TOLERANCE = 0.05
"""Classification: how far (absolute) the data-parallel network's validation accuracy may be from
the same seeded network's on one worker or in one process. Measured on 8 seeded tiny sets
(benchmarks/network_tolerance.py): 1 vs 2 workers at most 0.008 apart, 2 workers vs one process at
most 0.033; 0.05 leaves a margin over that. Tested on tiny data in tests/test_ray_train.py."""

NETWORK_NRMSE_TOLERANCE = 0.10
"""Regression: how far (absolute) the data-parallel network's validation RMSE / std(validation
targets) may be from the same seeded network's on one worker or in one process: 0.10 standard
deviations of the target. Measured on 8 seeded tiny sets (benchmarks/network_tolerance.py; R² 0.84
to 0.91 in one process): after 6 epochs, 1 vs 2 workers at most 0.012 apart, 2 workers vs one process
at most 0.059 and 1 worker vs one process at most 0.064 (the torch loop and Keras `fit` learn at
different paces early on); after 20 epochs at most 0.010, 0.033 and 0.025. 0.10 leaves the same
margin over the short-training figure as 0.05 does over classification's 0.033. Tested on tiny data
in tests/test_ray_train.py."""

TOLERANCE = {"classification": NETWORK_METRIC_TOLERANCE, "regression": NETWORK_NRMSE_TOLERANCE}
FIGURE = {
    "classification": "validation accuracy",
    "regression": "validation RMSE / standard deviation of the validation targets",
}


def tolerance_for(task: str) -> float:
    """The largest gap allowed on `FIGURE[task]` between the data-parallel and one-process network."""
    try:
        return TOLERANCE[task]
    except KeyError:
        raise ValueError(f"no data-parallel network tolerance for task {task!r}") from None


def normalised_rmse(y_true: np.ndarray, pred: np.ndarray) -> float:
    """RMSE / std of `y_true` (population std, as scikit-learn's R² uses): sqrt(1 - R²) on these rows,
    the same whatever the target's unit. A constant `y_true` has no scale: ValueError."""
    y = np.ravel(np.asarray(y_true, dtype=float))
    p = np.ravel(np.asarray(pred, dtype=float))
    std = float(np.std(y))
    if not std > 0:
        raise ValueError("the validation targets are constant: RMSE has no scale to be measured in")
    return math.sqrt(float(np.mean((y - p) ** 2))) / std


def network_figure(task: str, y_true: np.ndarray, scores: np.ndarray) -> float:
    """The figure the rule compares: accuracy of the class probabilities [N, K] (classification), or
    `normalised_rmse` of the predictions [N] (regression)."""
    if task == "classification":
        y = np.ravel(np.asarray(y_true)).astype(np.int64)
        return float(np.mean(np.argmax(np.asarray(scores), axis=1) == y))
    if task == "regression":
        return normalised_rmse(y_true, scores)
    raise ValueError(f"no data-parallel network tolerance for task {task!r}")


def network_gap(task: str, y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """|figure(a) - figure(b)|: two networks' predictions on the same validation rows."""
    return abs(network_figure(task, y_true, scores_a) - network_figure(task, y_true, scores_b))


def within_tolerance(task: str, y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> bool:
    """True when the two networks' validation figures are at most `tolerance_for(task)` apart."""
    return network_gap(task, y_true, scores_a, scores_b) <= tolerance_for(task) + 1e-12


def tolerance_statement(task: str) -> str:
    """The rule in words, for the run's decision (agents/ml_developer/network.py)."""
    if task == "regression":
        return (
            f"its validation RMSE divided by the validation targets' standard deviation (unit-free: "
            f"sqrt(1 - R²)) is expected within {NETWORK_NRMSE_TOLERANCE:g} of one process's"
        )
    return f"its validation accuracy is expected within {tolerance_for(task):g} of one process's"
